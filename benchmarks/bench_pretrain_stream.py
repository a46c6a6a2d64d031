"""Streaming pretraining: the memory and speed of `pretrain_dbn` on datasets.

Run: python benchmarks/bench_pretrain_stream.py [--quick] [--repeats 5]

Prints two markdown tables, both measured in the same run:

1. Memory. In a fresh subprocess, `pretrain_dbn` (a 784 -> 64 -> 32 -> 10
   sigmoid MLP, 1 RBM epoch per layer, default settings) over a 200,000 x 784
   dataset generated lazily (`tf.data.Dataset.range(n).map(...)`: each batch
   of binary MNIST-like images is made on the fly, the dataset is never in
   memory; 627 MB as float32). The peak RSS growth is the process's VmHWM at
   the end minus its VmRSS at the start, the peak reset at the start through
   `/proc/self/clear_refs` (else `ru_maxrss` after minus before). It is
   measured after a warm-up call on 40,000 samples (so that every layer
   streams in the warm-up too: the second layer's default shuffle buffer
   holds 32,768 samples of 64 features) and reported with the first call's
   growth ("cold": TensorFlow's one-off costs, code pages first touched,
   traced functions, allocator pools, which arrays pay as well). Target:
   warm growth < 10% of the dataset's size.
2. Speed. The same 20,000 x 784 data as an array, as
   `tf.data.Dataset.from_tensor_slices(x).batch(100)` and as a `PyDataset`;
   `pretrain_dbn` of a 784 -> 256 sigmoid layer (one RBM, batch 100, 3
   epochs) and `RBM(256).fit` alone. samples/s = samples x epochs / the
   call's wall time (the streaming runs include their statistics pass). The
   runs alternate, the best of `--repeats` of each is kept (the machine may
   be shared). Target: streaming >= 80% of the array's samples/s.

`--quick` runs both on tiny sizes (the test does; no targets then). No
comparison with NumPy or scikit-learn, so no OpenBLAS settings matter.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from keras_weightinit import RBM, pretrain_dbn

FEATURES = 784


# --------------------------------------------------------------------------
# data and models


def lazy_dataset(samples: int, batch: int = 100, seed: int = 0) -> tf.data.Dataset:
    """`samples` binary MNIST-like images, each batch generated when read."""
    prototypes = tf.constant(
        np.random.default_rng(seed).random((10, FEATURES)) ** 3, tf.float32
    )

    def make(i):
        key = tf.stack([i, tf.constant(seed, tf.int64)])
        keys = tf.random.experimental.stateless_split(key, 2)
        labels = tf.random.stateless_uniform(
            [batch], keys[0], minval=0, maxval=10, dtype=tf.int32
        )
        p = tf.gather(prototypes, labels)
        return tf.cast(
            tf.random.stateless_uniform(tf.shape(p), keys[1]) < p, tf.float32
        )

    return tf.data.Dataset.range(samples // batch).map(make)


def mnist_like(samples: int, seed: int = 0) -> np.ndarray:
    """MNIST-sized data in [0, 1], mostly near 0 (as in bench_rbm)."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((10, FEATURES)) ** 3
    x = prototypes[rng.integers(0, 10, samples)]
    x = x + rng.normal(0, 0.1, (samples, FEATURES))
    return np.clip(x, 0, 1).astype("float32")


class ArrayBatches(keras.utils.PyDataset):
    """A PyDataset over an array (batches made by slicing)."""

    def __init__(self, x: np.ndarray, batch: int):
        super().__init__()
        self.x, self.batch = x, batch

    def __len__(self):
        return -(-len(self.x) // self.batch)

    def __getitem__(self, i):
        return self.x[i * self.batch : (i + 1) * self.batch]


def mlp(widths) -> keras.Model:
    inputs = keras.Input((FEATURES,))
    h = inputs
    for width in widths:
        h = keras.layers.Dense(width, activation="sigmoid")(h)
    return keras.Model(inputs, keras.layers.Dense(10)(h))


# --------------------------------------------------------------------------
# memory, in a subprocess


def _status(key: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakGrowth:
    """Peak RSS growth over a block: VmHWM after - VmRSS before (reset)."""

    def __enter__(self):
        self.exact = _reset_peak() and _status("VmRSS") is not None
        self.before = _status("VmRSS") if self.exact else _maxrss()
        return self

    def __exit__(self, *exc):
        after = _status("VmHWM") if self.exact else _maxrss()
        self.growth = max(0, after - self.before)


def memory_child(samples: int, warmup: int, widths, epochs: int, buffer=None) -> dict:
    """Runs in the subprocess: peak growth of a cold and a warm call."""
    kwargs = {"epochs": epochs, "verbose": 0, "seed": 0, "shuffle_buffer": buffer}
    with PeakGrowth() as cold:
        pretrain_dbn(mlp(widths), lazy_dataset(warmup), **kwargs)
    with PeakGrowth() as warm:
        start = time.perf_counter()
        pretrain_dbn(mlp(widths), lazy_dataset(samples), **kwargs)
        seconds = time.perf_counter() - start
    return {
        "samples": samples,
        "warmup": warmup,
        "dataset_bytes": samples * FEATURES * 4,
        "cold_growth": cold.growth,
        "warm_growth": warm.growth,
        "seconds": seconds,
        "exact_peak": warm.exact,
        "widths": "-".join(map(str, widths)),
        "epochs": epochs,
    }


def measure_memory(
    samples: int, warmup: int, widths, epochs: int = 1, buffer=None
) -> dict:
    """`memory_child` in a fresh Python process (its RSS is its own)."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--memory-child",
        json.dumps([samples, warmup, list(widths), epochs, buffer]),
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"memory subprocess failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["ratio"] = result["warm_growth"] / result["dataset_bytes"]
    return result


# --------------------------------------------------------------------------
# speed


def measure_speed(
    samples: int, units: int, epochs: int, repeats: int, buffer=None
) -> list[dict]:
    """samples/s of the array and streaming paths, alternated, best of each."""
    x = mnist_like(samples)
    batch = 100
    settings = {"epochs": epochs, "batch_size": batch, "seed": 0}
    settings["shuffle_buffer"] = buffer  # streamed data only
    sources = {
        "array": lambda: x,
        "tf.data": lambda: tf.data.Dataset.from_tensor_slices(x).batch(batch),
        "PyDataset": lambda: ArrayBatches(x, batch),
    }
    runs = {}
    for source, make in sources.items():
        runs[("pretrain_dbn", source)] = lambda make=make: pretrain_dbn(
            mlp([units]), make(), verbose=0, **settings
        )
    for source in ("array", "tf.data"):
        runs[("RBM.fit", source)] = lambda make=sources[source]: RBM(
            units, **settings
        ).fit(make(), verbose=0)
    for run in runs.values():  # warm-up: traces, allocator pools
        run()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for key, run in runs.items():
            start = time.perf_counter()
            run()
            best[key] = min(best[key], time.perf_counter() - start)
    rows = []
    for (api, source), seconds in best.items():
        if source == "array":
            continue
        array = best[(api, "array")]
        rows.append(
            {
                "api": api,
                "source": source,
                "array": samples * epochs / array,
                "stream": samples * epochs / seconds,
                "ratio": array / seconds,
            }
        )
    return rows


# --------------------------------------------------------------------------


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no targets")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(*json.loads(args.memory_child))))
        return {}

    if args.quick:  # small shuffle buffers, so that the data are streamed
        memory = measure_memory(4_000, 2_000, [16, 8], buffer=500)
        speed = measure_speed(1_000, 16, 1, 1, buffer=200)
    else:
        memory = measure_memory(200_000, 40_000, [64, 32])
        speed = measure_speed(20_000, 256, 3, args.repeats)

    stamp = datetime.datetime.now().isoformat(timespec="minutes")
    print(f"{stamp}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}")
    print()
    mib = 2**20
    peak = "VmHWM" if memory["exact_peak"] else "ru_maxrss"
    print(
        f"| lazy dataset | size | peak RSS growth ({peak}) | of the size "
        "| first call (cold) | target |"
    )
    print("|---|---:|---:|---:|---:|---|")
    ok = "met" if memory["ratio"] < 0.1 else "NOT met"
    print(
        f"| {memory['samples']:,} x {FEATURES}, 784-{memory['widths']} DBN, "
        f"{memory['epochs']} epoch(s) "
        f"({memory['seconds']:.0f} s) | {memory['dataset_bytes'] / mib:.0f} MiB "
        f"| {memory['warm_growth'] / mib:.1f} MiB | {100 * memory['ratio']:.1f}% "
        f"| {memory['cold_growth'] / mib:.0f} MiB | < 10%: {ok} |"
    )
    print()
    print("| call | data | array samples/s | streamed samples/s | streamed / array |")
    print("|---|---|---:|---:|---:|")
    for row in speed:
        print(
            f"| {row['api']} | {row['source']} | {row['array']:,.0f} "
            f"| {row['stream']:,.0f} | {row['ratio']:.2f} |"
        )
    worst = min(row["ratio"] for row in speed)
    ok = "met" if worst >= 0.8 else "NOT met"
    print()
    print(f"- streaming >= 80% of the array's samples/s: {ok} (worst {worst:.2f})")
    return {"memory": memory, "speed": speed}


if __name__ == "__main__":
    main()
