"""The cost of `GradientHistograms` on a reference digits model.

Fits the same model (same seed, same data) without the callback, with it at
`freq=1` (logged every epoch) and with it at `freq` above the epoch count
(logged once, before the first step), and reports two costs separately:

- per logged epoch: (seconds inside the callback's hooks at `freq=1` minus
  those at the large `freq`) / epochs, as a fraction of one epoch of the
  plain fit. Target <= 3%.
- fixed per `fit`: the seconds inside the hooks at the large `freq` (setup,
  tracing the probe, the one log before the first step, closing the writer).
  Target <= 0.15 s.

The same two costs are also printed from the fit times (with minus without),
which include what the hooks' timer does not see but carry the machine's
noise. Runs alternate (plain, freq=1, large freq, ...) after one warm-up fit
of each, and the fastest of `--repeats` runs of each is kept.

Run:

    python benchmarks/bench_callbacks.py [--epochs 20] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
from sklearn.datasets import load_digits

from keras_weightinit import GradientHistograms, HeNormal

EPOCH_TARGET = 0.03  # of one plain epoch, per logged epoch
FIXED_TARGET = 0.15  # seconds per fit


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


def timed_fit(x, y, epochs: int, log_dir: str | None, freq: int = 1):
    """Seconds of the fit, and of that, seconds inside the callback's hooks."""
    model = reference_model()
    callbacks = []
    if log_dir is not None:
        callbacks.append(TimedGradientHistograms(log_dir, (x[:256], y[:256]), freq))
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=callbacks)
    return time.perf_counter() - start, sum(c.seconds for c in callbacks)


def measure(epochs: int, repeats: int) -> dict:
    """The fastest fit and hook seconds of each variant, alternating."""
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int64")
    runs = {"plain": [], "every": [], "once": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats + 1):  # the first round is a warm-up
            results = {
                "plain": timed_fit(x, y, epochs, None),
                "every": timed_fit(x, y, epochs, os.path.join(tmp, f"e{i}")),
                "once": timed_fit(
                    x, y, epochs, os.path.join(tmp, f"o{i}"), freq=epochs + 1
                ),
            }
            if i:
                for name, value in results.items():
                    runs[name].append(value)
    best = {
        name: (min(r[0] for r in rows), min(r[1] for r in rows))
        for name, rows in runs.items()
    }
    epoch = best["plain"][0] / epochs
    hooks = {
        "per_epoch": (best["every"][1] - best["once"][1]) / epochs / epoch,
        "fixed": best["once"][1],
    }
    fits = {
        "per_epoch": (best["every"][0] - best["once"][0]) / epochs / epoch,
        "fixed": best["once"][0] - best["plain"][0],
    }
    return {"epoch": epoch, "hooks": hooks, "fits": fits, "best": best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    result = measure(args.epochs, args.repeats)
    hooks, fits = result["hooks"], result["fits"]
    print(
        "reference model: digits (1,797 samples), 64-256-256-10 MLP, batch 32, "
        f"{args.epochs} epochs, fastest of {args.repeats} runs each; one plain "
        f"epoch {result['epoch'] * 1000:.0f} ms\n"
    )
    print("| cost of GradientHistograms | from its hooks | from fit times | target |")
    print("|---|---:|---:|---|")
    epoch_ok = "met" if hooks["per_epoch"] <= EPOCH_TARGET else "NOT met"
    fixed_ok = "met" if hooks["fixed"] <= FIXED_TARGET else "NOT met"
    print(
        f"| per logged epoch (of a plain epoch) | {hooks['per_epoch']:.1%} | "
        f"{fits['per_epoch']:.1%} | <= {EPOCH_TARGET:.0%}: {epoch_ok} |"
    )
    print(
        f"| fixed per fit | {hooks['fixed']:.3f} s | {fits['fixed']:.3f} s | "
        f"<= {FIXED_TARGET} s: {fixed_ok} |"
    )


if __name__ == "__main__":
    main()
