"""The cases `diagnose`'s verdict is checked on: nets that train and ones that do not.

For each case: the verdict at initialization, the two ratios it reads, the
raw gradient ratio (first kernel layer over last, normalization ignored: the
criterion used for plain MLPs before, which raises false alarms on normalized
nets), and the training accuracy after a short run on scikit-learn's digits
(chance is 0.10).

    python benchmarks/diagnose_cases.py            # all cases, a few minutes
    python benchmarks/diagnose_cases.py --quick    # tiny data, for the tests
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from keras_weightinit import diagnose


def digits(image: bool, n: int):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")[:n]
    y = y.astype("int32")[:n]
    if image:  # 8x8 -> 32x32x3, as the stock nets take it
        x = np.repeat(np.repeat(x.reshape(-1, 8, 8, 1), 4, axis=1), 4, axis=2)
        x = np.repeat(x, 3, axis=-1)
    return x, y


def mlp(init, depth=20):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((64,))]
    layers += [
        keras.layers.Dense(128, activation="relu", kernel_initializer=init)
        for _ in range(depth)
    ]
    layers.append(keras.layers.Dense(10, activation="softmax"))
    return keras.Sequential(layers)


CASES = {
    "mlp20 he": lambda: (mlp("he_normal"), False),
    "mlp20 lecun": lambda: (mlp("lecun_normal"), False),
    "mlp20 N(0,0.01^2)": lambda: (mlp(keras.initializers.RandomNormal(0, 0.01)), False),
    "mlp20 N(0,1)": lambda: (mlp(keras.initializers.RandomNormal(0, 1)), False),
    "ResNet50": lambda: (
        keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10),
        True,
    ),
    "MobileNetV2": lambda: (
        keras.applications.MobileNetV2(
            weights=None, input_shape=(32, 32, 3), classes=10
        ),
        True,
    ),
}


def raw_ratio(report) -> float:
    first, last = report.rows[0]["grad_norm"], report.rows[-1]["grad_norm"]
    return first / last if last else float("nan")


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    n = 64 if args.quick else 1024
    epochs = 1 if args.quick else args.epochs
    names = list(CASES)[:2] if args.quick else list(CASES)
    results = []
    print("| case | verdict | r_g | r_a | raw first/last | train accuracy |")
    print("|---|---|---|---|---|---|")
    for name in names:
        model, image = CASES[name]()
        x, y = digits(image, n)
        model.compile(
            keras.optimizers.SGD(0.01, momentum=0.9),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        report = diagnose(model, x[:64], y[:64])
        history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
        row = {
            "case": name,
            "verdict": report.verdict,
            "gradient_ratio": report.gradient_ratio,
            "activation_ratio": report.activation_ratio,
            "raw_ratio": raw_ratio(report),
            "accuracy": max(history.history["accuracy"]),
        }
        results.append(row)
        print(
            f"| {name} | {row['verdict']} | {row['gradient_ratio']:.2g} | "
            f"{row['activation_ratio']:.2g} | {row['raw_ratio']:.2g} | "
            f"{row['accuracy']:.2f} |",
            flush=True,
        )
    return results


if __name__ == "__main__":
    main()
