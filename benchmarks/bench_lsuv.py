"""LSUV against depth: `lsuv` on ReLU MLPs of two depths, and a first step.

For each depth, a `Sequential` of `depth` `Dense(width, relu)` layers and a
`Dense(10)` readout on `samples` standard normal inputs: the time of `lsuv`
(seeded, after one untimed call that warms the backend's kernels), and the
time of the model's first `train_on_batch` on the same batch (which
compiles the step), each the fastest of `repeats` runs on a fresh model.
LSUV linear in depth takes about `deep / shallow` times as long at the
deeper depth.

    python benchmarks/bench_lsuv.py                   # depths 100 and 400
    python benchmarks/bench_lsuv.py --depths 2 4 --width 8 --samples 16  # tiny
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _mlp(depth: int, width: int, features: int):
    import keras

    return keras.Sequential(
        [keras.Input((features,))]
        + [keras.layers.Dense(width, activation="relu") for _ in range(depth)]
        + [keras.layers.Dense(10)]
    )


def _fastest(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def bench(depths, width: int = 64, samples: int = 256, repeats: int = 2) -> list:
    """`[{"depth", "lsuv", "step"}]`: seconds of `lsuv` and a first step."""
    import numpy as np

    import keras_weightinit as kwi

    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, width)).astype("float32")
    y = rng.normal(size=(samples, 10)).astype("float32")
    kwi.lsuv(_mlp(2, width, width), x, seed=0)  # warm the kernels
    rows = []
    for depth in depths:

        def lsuv(depth=depth):
            kwi.lsuv(_mlp(depth, width, width), x, seed=0)

        def step(depth=depth):
            model = _mlp(depth, width, width)
            model.compile("sgd", "mse")
            model.train_on_batch(x, y)

        rows.append(
            {
                "depth": depth,
                "lsuv": _fastest(lsuv, repeats),
                "step": _fastest(step, repeats),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import keras

    rows = bench(args.depths, args.width, args.samples, args.repeats)
    print(
        f"backend {keras.backend.backend()}, width {args.width}, {args.samples} samples"
    )
    print(
        "| depth | lsuv, s | first train_on_batch, s | lsuv / step | over the first |"
    )
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['depth']} | {row['lsuv']:.2f} | {row['step']:.2f} | "
            f"{row['lsuv'] / row['step']:.1f}x | {row['lsuv'] / rows[0]['lsuv']:.1f}x |"
        )


if __name__ == "__main__":
    main()
