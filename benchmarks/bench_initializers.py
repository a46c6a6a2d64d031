"""Initializers on the device: draw time, traced graph size, unbuilt-model fit.

Ratios measured in one run, ours over Keras's built-in of the same
distribution on the same shape, fastest of several alternating runs:

- eager draw time: `HeNormal` against `VarianceScaling(2, "fan_in",
  "untruncated_normal")` (Keras's `HeNormal` is truncated), `XavierUniform`
  against `GlorotUniform`, `Orthogonal` against `Orthogonal`;
- the GraphDef of a traced draw, for a small and a large kernel;
- `fit` of an unbuilt `Sequential([Dense(units), Dense(1)])` on `units`
  inputs for one epoch, time and peak-memory growth, each in a fresh process.

    python benchmarks/bench_initializers.py            # the targets' sizes
    python benchmarks/bench_initializers.py --quick    # tiny, for the tests
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _pairs(size: int, orthogonal: int):
    import keras

    import keras_weightinit as kwi

    return [
        (
            f"HeNormal ({size}, {size})",
            kwi.HeNormal(seed=1),
            keras.initializers.VarianceScaling(
                2.0, "fan_in", "untruncated_normal", seed=1
            ),
            (size, size),
        ),
        (
            f"XavierUniform ({size}, {size})",
            kwi.XavierUniform(seed=1),
            keras.initializers.GlorotUniform(seed=1),
            (size, size),
        ),
        (
            f"Orthogonal ({orthogonal}, {orthogonal})",
            kwi.Orthogonal(seed=1),
            keras.initializers.Orthogonal(seed=1),
            (orthogonal, orthogonal),
        ),
    ]


def _seconds(init, shape) -> float:
    import keras

    start = time.perf_counter()
    values = init(shape)
    keras.ops.convert_to_numpy(values[:1, :1])  # wait for the device
    return time.perf_counter() - start


def draw_times(size: int, orthogonal: int, repeats: int) -> list[dict]:
    """Fastest eager draw of ours and of Keras's, alternating."""
    rows = []
    for name, ours, theirs, shape in _pairs(size, orthogonal):
        _seconds(ours, shape), _seconds(theirs, shape)  # warm-up
        times = {"ours": [], "keras": []}
        for _ in range(repeats):
            times["ours"].append(_seconds(ours, shape))
            times["keras"].append(_seconds(theirs, shape))
        best = {k: min(v) for k, v in times.items()}
        rows.append({"case": name, **best, "ratio": best["ours"] / best["keras"]})
    return rows


def graph_sizes(sizes: list[int]) -> list[dict]:
    """Bytes of the GraphDef of a traced `HeNormal` draw (TensorFlow)."""
    import tensorflow as tf

    import keras_weightinit as kwi

    rows = []
    for size in sizes:
        init = kwi.HeNormal()

        def draw(init=init, size=size):
            return init((size, size))

        function = tf.function(draw, autograph=False).get_concrete_function()
        graph = function.graph.as_graph_def().SerializeToString()
        rows.append({"shape": (size, size), "bytes": len(graph)})
    return rows


_FIT = """
import os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import json, keras, numpy as np
import keras_weightinit as kwi
units, which = int(sys.argv[1]), sys.argv[2]
x = np.random.default_rng(0).standard_normal((256, units)).astype("float32")
y = np.zeros((256, 1), "float32")
init = kwi.HeNormal(seed=0) if which == "ours" else keras.initializers.HeNormal(0)
model = keras.Sequential([keras.layers.Dense(units, kernel_initializer=init),
                          keras.layers.Dense(1)])
model.compile("sgd", "mse")
def status(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field + ":"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak (VmHWM) to the current resident size
before = status("VmRSS")
start = time.perf_counter()
model.fit(x, y, epochs=1, batch_size=64, verbose=0)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mb": (status("VmHWM") - before) / 1024}))
"""


def fit_costs(units: int, repeats: int) -> dict:
    """Fastest `fit` and median peak-memory growth of each, in fresh processes.

    The growth is the peak resident size during `fit` (`VmHWM`, reset just
    before it) over the resident size before it.
    """
    runs = {"ours": [], "keras": []}
    for _ in range(repeats):
        for which in runs:
            out = subprocess.run(
                [sys.executable, "-c", _FIT, str(units), which],
                capture_output=True,
                text=True,
                check=True,
                timeout=900,
            ).stdout
            runs[which].append(json.loads(out.strip().splitlines()[-1]))
    best = {
        which: {
            "seconds": min(r["seconds"] for r in rows),
            "peak_mb": sorted(r["peak_mb"] for r in rows)[len(rows) // 2],
        }
        for which, rows in runs.items()
    }
    return {
        **best,
        "time_ratio": best["ours"]["seconds"] / best["keras"]["seconds"],
        "memory_ratio": best["ours"]["peak_mb"] / max(best["keras"]["peak_mb"], 1e-9),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    import keras

    size, orthogonal, units = (64, 32, 64) if args.quick else (8192, 4096, 8192)
    repeats = 2 if args.quick else args.repeats
    print(f"backend {keras.backend.backend()}, {time.strftime('%Y-%m-%d %H:%M')}")
    draws = draw_times(size, orthogonal, repeats)
    print("\n| eager draw | ours s | Keras s | ours / Keras |\n|---|---:|---:|---:|")
    for row in draws:
        print(
            f"| {row['case']} | {row['ours']:.4f} | {row['keras']:.4f} | "
            f"{row['ratio']:.2f}x |"
        )
    graphs = []
    if keras.backend.backend() == "tensorflow":
        graphs = graph_sizes([64, 512] if args.quick else [256, 4096, 16384])
        print("\n| traced HeNormal draw | GraphDef bytes |\n|---|---:|")
        for row in graphs:
            print(f"| {row['shape']} | {row['bytes']:,} |")
    fit = fit_costs(units, 1 if args.quick else 3)
    print(
        f"\n| unbuilt `Dense({units})` fit, 1 epoch | ours | Keras | ratio |\n"
        "|---|---:|---:|---:|\n"
        f"| time, s | {fit['ours']['seconds']:.2f} | {fit['keras']['seconds']:.2f} "
        f"| {fit['time_ratio']:.2f}x |\n"
        f"| peak memory growth, MB | {fit['ours']['peak_mb']:.0f} | "
        f"{fit['keras']['peak_mb']:.0f} | {fit['memory_ratio']:.2f}x |"
    )
    return {"draws": draws, "graphs": graphs, "fit": fit}


if __name__ == "__main__":
    main()
