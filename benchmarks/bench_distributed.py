"""Pretraining and a logged fit on 1 and on 2 local processes (keras.distribution).

Each run launches N JAX processes on 127.0.0.1 (gloo collectives, one CPU
device each, `DataParallel`), each holding 1/N of the same data. Each times,
after a warm-up on a few samples:

- `pretrain_dbn` of a 784-256-64 sigmoid DBN, 2 RBM epochs per layer, batch
  100 (every step exchanges the RBM's gradient sums);
- one `fit` epoch with `GradientHistograms(freq=1)` (batch 100).

samples/s = all processes' samples x epochs / the slowest process's wall
time; "share" is the fraction of the samples each process held. On one
machine the processes share its cores, so samples/s measures the exchange's
cost, not a speed-up; across machines each process brings its own.

    KERAS_BACKEND=jax python benchmarks/bench_distributed.py [--samples 8000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

EPOCHS = 2


def worker(processes: int, process: int, port: int, samples: int, out: str) -> None:
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    import keras

    if processes > 1:
        keras.distribution.initialize(f"127.0.0.1:{port}", processes, process)
    distribution = keras.distribution.DataParallel(
        devices=keras.distribution.list_devices()
    )
    distribution.auto_shard_dataset = False
    keras.distribution.set_distribution(distribution)
    import numpy as np

    from keras_weightinit import GradientHistograms, pretrain_dbn

    rng = np.random.default_rng(0)
    x = (rng.random((samples, 784)) < 0.2).astype("float32")
    y = rng.integers(0, 10, samples).astype("int32")
    mine = slice(process, None, processes)
    x_mine, y_mine = x[mine], y[mine]

    def model():
        keras.utils.set_random_seed(0)
        m = keras.Sequential(
            [keras.Input((784,))]
            + [keras.layers.Dense(w, activation="sigmoid") for w in (256, 64)]
            + [keras.layers.Dense(10, activation="softmax")]
        )
        m.compile("sgd", "sparse_categorical_crossentropy")
        return m

    logs = os.path.join(out, "logs")
    probe = (x[:256], y[:256])
    settings = dict(epochs=EPOCHS, batch_size=100, verbose=0, seed=0)
    pretrain_dbn(model(), x_mine[:400], **settings)  # warm-up: traces
    start = time.perf_counter()
    pretrain_dbn(model(), x_mine, **settings)
    pretrain = time.perf_counter() - start
    fitted = model()
    callback = GradientHistograms(logs, data=probe)
    fitted.fit(x_mine[:400], y_mine[:400], batch_size=100, verbose=0)  # warm-up
    start = time.perf_counter()
    fitted.fit(x_mine, y_mine, batch_size=100, verbose=0, callbacks=[callback])
    fit = time.perf_counter() - start
    result = {"samples": len(x_mine), "pretrain": pretrain, "fit": fit}
    with open(os.path.join(out, f"{process}.json"), "w") as f:
        json.dump(result, f)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(processes: int, samples: int, timeout: float) -> dict:
    """One run of `processes` workers; their results, every child ended."""
    with tempfile.TemporaryDirectory() as out:
        port = free_port()
        env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
        children = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", str(processes), str(i)]
                + [str(port), str(samples), out],
                env=env,
            )
            for i in range(processes)
        ]
        try:
            codes = [child.wait(timeout=timeout) for child in children]
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        if any(codes):
            raise RuntimeError(f"a worker failed: exit codes {codes}")
        rows = []
        for i in range(processes):
            with open(os.path.join(out, f"{i}.json")) as f:
                rows.append(json.load(f))
    total = sum(r["samples"] for r in rows)
    return {
        "processes": processes,
        "pretrain": total * EPOCHS / max(r["pretrain"] for r in rows),
        "fit": total / max(r["fit"] for r in rows),
        "share": [r["samples"] / total for r in rows],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8000)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--worker", nargs=5)
    args = parser.parse_args()
    if args.worker:
        processes, process, port, samples, out = args.worker
        worker(int(processes), int(process), int(port), int(samples), out)
        return
    results = [run(n, args.samples, args.timeout) for n in (1, 2)]
    stamp = datetime.datetime.now().isoformat(timespec="minutes")
    print(f"{stamp}, {os.cpu_count()} CPUs, {args.samples} samples of 784\n")
    print(
        "| processes | pretrain_dbn samples/s | fit + GradientHistograms samples/s "
        "| share of the samples per process |"
    )
    print("|---:|---:|---:|---|")
    for r in results:
        share = ", ".join(f"{s:.0%}" for s in r["share"])
        print(
            f"| {r['processes']} | {r['pretrain']:,.0f} | {r['fit']:,.0f} | {share} |"
        )


if __name__ == "__main__":
    main()
