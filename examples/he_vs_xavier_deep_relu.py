"""He et al. 2015, figure 3 at small scale: a 30-layer ReLU MLP on digits.

The article's Xavier (`randn(fan_in, fan_out) / sqrt(fan_in)`) halves the
signal's second moment at every ReLU layer, so after 30 layers almost nothing
reaches the output or comes back, and the network does not learn. He's
`randn / sqrt(fan_in / 2)` keeps the scale, and the same network learns.

    python examples/he_vs_xavier_deep_relu.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import keras_weightinit as kwi

DEPTH, WIDTH, EPOCHS, SEEDS = 30, 128, 20, (0, 1)


def run(scheme: str, seed: int, data) -> tuple[float, float]:
    x_tr, x_va, y_tr, y_va = data
    keras.utils.set_random_seed(seed)
    init = kwi.get_scheme(scheme, seed=seed)
    model = keras.Sequential([keras.Input((64,))])
    for _ in range(DEPTH):
        model.add(keras.layers.Dense(WIDTH, activation="relu", kernel_initializer=init))
    model.add(keras.layers.Dense(10, activation="softmax", kernel_initializer=init))
    model.compile(
        keras.optimizers.SGD(0.003, momentum=0.9),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    ratio = kwi.diagnose(model, x_tr[:256], y_tr[:256]).gradient_ratio
    history = model.fit(
        x_tr,
        y_tr,
        validation_data=(x_va, y_va),
        epochs=EPOCHS,
        batch_size=32,
        verbose=0,
    )
    return ratio, history.history["val_accuracy"][-1]


def main():
    x, y = load_digits(return_X_y=True)
    data = train_test_split(
        (x / 16.0).astype("float32"), y, test_size=0.25, random_state=0, stratify=y
    )
    print(f"{DEPTH}-layer ReLU MLP, width {WIDTH}, SGD momentum, {EPOCHS} epochs")
    print("scheme   seed  grad ratio first/last at init  val accuracy")
    for scheme in ("xavier", "he"):
        for seed in SEEDS:
            ratio, accuracy = run(scheme, seed, data)
            print(f"{scheme:<8} {seed:>4}  {ratio:>29.2e}  {accuracy:>12.3f}")


if __name__ == "__main__":
    main()
