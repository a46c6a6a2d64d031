r"""Data-parallel training over several processes, with every tool of the package.

Each process joins the others with `keras.distribution.initialize`, holds
only its own shard of digits, and runs the same program: `lsuv` (variance
estimates averaged over the processes), `DBNPretrain` (one DBN trained on
all the shards: the RBM updates are averaged every step), `GradientHistograms`
(process 0 writes the one event file) and `diagnose` (the same verdict on
every process). At the end every process prints a digest of its weights:
they are the same.

On one machine (N processes on 127.0.0.1, CPU, JAX's gloo collectives):

    KERAS_BACKEND=jax python examples/distributed.py --processes 2

On several hosts, run one process per host (or per device group) yourself,
with the same coordinator address and a distinct `--process-id` each:

    KERAS_BACKEND=jax python examples/distributed.py --processes 4 \
        --process-id 0 --coordinator host0:1234       # on host 0
    KERAS_BACKEND=jax python examples/distributed.py --processes 4 \
        --process-id 1 --coordinator host0:1234       # on host 1, ...

`tensorboard --logdir logs/distributed` shows the runs of process 0.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LOG_DIR = os.path.join("logs", "distributed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(processes: int, timeout: float) -> int:
    """Runs `processes` copies of this script on 127.0.0.1; all end together."""
    coordinator = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                f"--processes={processes}",
                f"--process-id={i}",
                f"--coordinator={coordinator}",
            ],
            env=env,
        )
        for i in range(processes)
    ]
    try:
        codes = [child.wait(timeout=timeout) for child in children]
    finally:
        for child in children:  # a failure or a timeout ends every process
            if child.poll() is None:
                child.kill()
                child.wait()
    return max(abs(code) for code in codes)


def worker(processes: int, process_id: int, coordinator: str) -> None:
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    import keras

    keras.distribution.initialize(coordinator, processes, process_id)
    distribution = keras.distribution.DataParallel(
        devices=keras.distribution.list_devices()
    )
    distribution.auto_shard_dataset = False  # each process reads its own shard
    keras.distribution.set_distribution(distribution)

    import numpy as np
    from sklearn.datasets import load_digits

    import keras_weightinit as kwi

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    shard = slice(process_id, None, processes)  # this process's samples
    x_mine, y_mine = x[shard], y[shard]
    probe = (x[:256], y[:256])  # the same probe batch on every process

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,))]
        + [keras.layers.Dense(64, activation="sigmoid") for _ in range(3)]
        + [keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy"
    )
    kwi.lsuv(model, x_mine[:128], seed=0)
    model.fit(
        x_mine,
        y_mine,
        epochs=3,
        batch_size=32,
        verbose=0,
        callbacks=[
            kwi.DBNPretrain(x_mine, epochs=3, verbose=0, seed=0),
            kwi.GradientHistograms(LOG_DIR, data=probe),
        ],
    )
    report = kwi.diagnose(model, *probe)
    digest = hashlib.sha256(
        b"".join(np.asarray(w).tobytes() for w in model.get_weights())
    ).hexdigest()[:16]
    print(
        f"process {process_id}/{processes}: {len(x_mine)} samples, "
        f"verdict {report.verdict}, weights {digest}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("--coordinator", default=None)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    if args.processes < 1:
        parser.error(f"--processes must be at least 1. Received: {args.processes}")
    if args.process_id is None:
        return launch(args.processes, args.timeout)
    if args.coordinator is None:
        parser.error("--coordinator is needed with --process-id")
    worker(args.processes, args.process_id, args.coordinator)
    return 0


if __name__ == "__main__":
    sys.exit(main())
