"""Gradient histograms in TensorBoard: small random init against He init.

Trains the same 10-layer ReLU MLP on digits twice, with `N(0, 0.01^2)` and
with He init, logging Keras's own scalars plus `GradientHistograms` to one
run directory per scheme, and prints `diagnose`'s verdict before training.

    python examples/gradient_histograms.py
    tensorboard --logdir logs/gradient_histograms

In TensorBoard's Histograms tab, `.../d0/kernel/gradient` of `small_random`
is a spike at zero while `he`'s is spread like its last layer's; the Scalars
tab shows `gradient_norm/<layer>` and `activation_std/<layer>` per layer.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from keras_weightinit import GradientHistograms, diagnose, get_scheme

LOG_DIR = os.path.join("logs", "gradient_histograms")
DEPTH, WIDTH, EPOCHS = 10, 128, 5


def mlp(scheme: str) -> keras.Model:
    layers = [keras.Input((64,))]
    for i in range(DEPTH - 1):
        layers.append(
            keras.layers.Dense(
                WIDTH,
                activation="relu",
                kernel_initializer=get_scheme(scheme, seed=i),
                name=f"d{i}",
            )
        )
    layers.append(keras.layers.Dense(10, activation="softmax", name="out"))
    model = keras.Sequential(layers, name=scheme)
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main() -> None:
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    x_train, x_val, y_train, y_val = train_test_split(
        x, digits.target, test_size=0.25, random_state=0
    )
    probe = (x_train[:256], y_train[:256])
    for scheme in ("small_random", "he"):
        keras.utils.set_random_seed(0)
        model = mlp(scheme)
        run_dir = os.path.join(LOG_DIR, scheme)
        report = diagnose(model, *probe)
        print(f"\n== {scheme} ==\n{report}")
        report.plot(os.path.join(run_dir, "diagnosis.png"))
        history = model.fit(
            x_train,
            y_train,
            validation_data=(x_val, y_val),
            epochs=EPOCHS,
            batch_size=32,
            verbose=0,
            callbacks=[
                keras.callbacks.TensorBoard(run_dir),
                GradientHistograms(log_dir=run_dir, data=probe),
            ],
        )
        print(
            f"{scheme}: val accuracy after {EPOCHS} epochs "
            f"{history.history['val_accuracy'][-1]:.3f}"
        )
    print(f"\nLogs in {LOG_DIR}/; run: tensorboard --logdir {LOG_DIR}")


if __name__ == "__main__":
    main()
