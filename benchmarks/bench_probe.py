"""`diagnose` and `lsuv` against the first `train_on_batch` of the same model.

In one process, on whatever device the backend sees (so the same command
gives the GPU table on a machine with a GPU), each on a fresh model:

- `diagnose(ResNet50, x, y)` and `lsuv(ResNet50, x)` (32x32 inputs, 10
  classes, batch 32) over the first `train_on_batch(x, y)` of the same
  model and batch, which compiles the training step (targets 1.5x and 2x);
- `lsuv` on a `Sequential` of 400 `Dense(64, relu)` layers and a
  `Dense(10)` (256 samples) over its first `train_on_batch` (target 2x),
  and over `lsuv` at depth 100 (linear in depth is 4x; target 6x).

Each time is the fastest of `--repeats` runs, each on a new model; a tiny
model runs every tool once first (the backend's one-time costs).

    KERAS_BACKEND=jax python benchmarks/bench_probe.py
    python benchmarks/bench_probe.py --small        # small sizes, quick
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGETS = {
    "diagnose(ResNet50) / step": 1.5,
    "lsuv(ResNet50) / step": 2.0,
    "lsuv(MLP deep) / step": 2.0,
    "lsuv(MLP deep) / lsuv(MLP shallow)": 6.0,
}


def device() -> str:
    """The device the backend computes on, in words."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return str(jax.devices()[0].device_kind)
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
        return "CPU"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return gpus[0].name if gpus else "CPU"


def _resnet(size: int, classes: int = 10):
    import keras

    model = keras.applications.ResNet50(
        weights=None, input_shape=(size, size, 3), classes=classes
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def _mlp(depth: int, width: int = 64):
    import keras

    model = keras.Sequential(
        [keras.Input((width,))]
        + [keras.layers.Dense(width, activation="relu") for _ in range(depth)]
        + [keras.layers.Dense(10)]
    )
    model.compile("sgd", "mse")
    return model


def _fastest(build, run, repeats: int) -> float:
    """The fastest of `repeats` runs of `run(model)`, each on a new model."""
    times = []
    for _ in range(repeats):
        model = build()
        start = time.perf_counter()
        run(model)
        times.append(time.perf_counter() - start)
    return min(times)


def bench(
    size: int = 32,
    batch: int = 32,
    depths: tuple[int, int] = (100, 400),
    samples: int = 256,
    repeats: int = 1,
    resnet=None,
) -> dict:
    """`{case: seconds}` of every case, measured in this process."""
    import numpy as np

    import keras_weightinit as kwi

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, size, size, 3)).astype("float32")
    y = (np.arange(batch) % 10).astype("int32")
    xs = rng.normal(size=(samples, 64)).astype("float32")
    ys = rng.normal(size=(samples, 10)).astype("float32")
    resnet = resnet or (lambda: _resnet(size))

    tiny = _mlp(2)  # the backend's one-time costs, outside every timing
    kwi.diagnose(tiny, xs, ys)
    kwi.lsuv(_mlp(2), xs, seed=0)
    tiny.train_on_batch(xs, ys)

    def step(data):
        return lambda model: model.train_on_batch(*data)

    found = {
        "diagnose(ResNet50)": _fastest(
            resnet, lambda m: kwi.diagnose(m, x, y), repeats
        ),
        "lsuv(ResNet50)": _fastest(resnet, lambda m: kwi.lsuv(m, x, seed=0), repeats),
        "step(ResNet50)": _fastest(resnet, step((x, y)), repeats),
    }
    shallow, deep = depths
    found["lsuv(MLP shallow)"] = _fastest(
        lambda: _mlp(shallow), lambda m: kwi.lsuv(m, xs, seed=0), repeats
    )
    found["lsuv(MLP deep)"] = _fastest(
        lambda: _mlp(deep), lambda m: kwi.lsuv(m, xs, seed=0), repeats
    )
    found["step(MLP deep)"] = _fastest(lambda: _mlp(deep), step((xs, ys)), repeats)
    return found


def ratios(found: dict) -> dict:
    """`{ratio name: value}` of the cases in `TARGETS`."""
    return {
        "diagnose(ResNet50) / step": found["diagnose(ResNet50)"]
        / found["step(ResNet50)"],
        "lsuv(ResNet50) / step": found["lsuv(ResNet50)"] / found["step(ResNet50)"],
        "lsuv(MLP deep) / step": found["lsuv(MLP deep)"] / found["step(MLP deep)"],
        "lsuv(MLP deep) / lsuv(MLP shallow)": found["lsuv(MLP deep)"]
        / found["lsuv(MLP shallow)"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--small",
        action="store_true",
        help="ResNet50 at batch 8 and MLPs of depth 25 and 100: a quick run",
    )
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    import keras

    if args.small:
        sizes = {"batch": 8, "depths": (25, 100), "samples": 64}
    else:
        sizes = {"batch": 32, "depths": (100, 400), "samples": 256}
    found = bench(repeats=args.repeats, **sizes)
    shallow, deep = sizes["depths"]
    print(
        f"backend {keras.backend.backend()}, device {device()}, ResNet50 at "
        f"32x32 batch {sizes['batch']}, MLP depths {shallow}/{deep} "
        f"(width 64, {sizes['samples']} samples), fastest of {args.repeats}"
    )
    print("| case | seconds |")
    print("|---|---:|")
    for name, seconds in found.items():
        print(f"| {name} | {seconds:.2f} |")
    print()
    print("| ratio | value | target |")
    print("|---|---:|---:|")
    for name, value in ratios(found).items():
        print(f"| {name} | {value:.2f}x | <= {TARGETS[name]:g}x |")


if __name__ == "__main__":
    main()
