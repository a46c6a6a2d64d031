"""Overhead of `GradientHistograms` at `freq=1` on a reference digits model.

Fits the same model (same seed, same data) with and without the callback and
prints the ratio of the fit times; the target is at most 1.10x. Runs
alternate (without, with, without, with, ...) after one warm-up fit, so the
noise of a shared machine hits both; the target is judged on the fastest run
of each (the least disturbed), and the ratio of the medians is printed too.
The time spent inside the callback's own hooks is measured as well: the
overhead itself, which the noise of the fit times does not blur.

Run:

    python benchmarks/bench_callbacks.py [--epochs 20] [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from keras_weightinit import GradientHistograms, HeNormal  # noqa: E402

TARGET = 1.10


def reference_model(seed: int = 0) -> keras.Model:
    """64-256-256-10 ReLU MLP with He init, Adam, sparse cross-entropy."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="relu", kernel_initializer=HeNormal()),
            keras.layers.Dense(256, activation="relu", kernel_initializer=HeNormal()),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class TimedGradientHistograms(GradientHistograms):
    """`GradientHistograms` that adds up the seconds spent in its own hooks."""

    seconds = 0.0

    def _timed(self, hook, *args, **kwargs):
        start = time.perf_counter()
        try:
            return hook(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start

    def on_train_begin(self, logs=None):
        self._timed(super().on_train_begin, logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._timed(super().on_epoch_begin, epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._timed(super().on_epoch_end, epoch, logs)

    def on_train_end(self, logs=None):
        self._timed(super().on_train_end, logs)


def timed_fit(x, y, epochs: int, log_dir: str | None) -> tuple[float, float]:
    """Seconds of the fit, and of that, seconds inside the callback's hooks."""
    model = reference_model()
    callbacks = []
    if log_dir is not None:
        callbacks.append(TimedGradientHistograms(log_dir, (x[:256], y[:256])))
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=callbacks)
    return time.perf_counter() - start, sum(c.seconds for c in callbacks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int64")
    timed_fit(x, y, 1, None)  # warm-up: TensorFlow's one-time start costs
    plain, logged, inside = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            plain.append(timed_fit(x, y, args.epochs, None)[0])
            seconds, hooks = timed_fit(x, y, args.epochs, os.path.join(tmp, str(i)))
            logged.append(seconds)
            inside.append(hooks)
    t_plain, t_logged = min(plain), min(logged)
    ratio = t_logged / t_plain
    median_ratio = statistics.median(logged) / statistics.median(plain)
    print(
        f"reference model: digits ({len(x)} samples), 64-256-256-10 MLP, "
        f"batch 32, {args.epochs} epochs, {args.repeats} runs each"
    )
    print(
        f"fit without callback: fastest {t_plain:.2f} s  (runs: {np.round(plain, 2)})"
    )
    print(
        f"fit with GradientHistograms(freq=1): fastest {t_logged:.2f} s  "
        f"(runs: {np.round(logged, 2)})"
    )
    print(
        f"time inside the callback's hooks: fastest {min(inside):.2f} s, "
        f"{min(inside) / t_plain:.1%} of the fastest plain fit "
        f"(runs: {np.round(inside, 2)})"
    )
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"ratio of medians: {median_ratio:.3f}x")
    print(f"ratio of fastest runs: {ratio:.3f}x  (target <= {TARGET:.2f}x: {verdict})")


if __name__ == "__main__":
    main()
