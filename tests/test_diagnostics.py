"""Tests of `keras_weightinit.diagnostics`.

`diagnose`: verdicts on digits, the per-layer rows measured independently,
the report's outputs and clear errors.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from keras_weightinit import (
    DiagnosisReport,
    HeNormal,
    RandomNormal,
    SmallRandomNormal,
    XavierNormal,
    diagnose,
)

ROW_KEYS = {
    "name",
    "activation",
    "fan_in",
    "fan_out",
    "mean",
    "std",
    "dead_fraction",
    "saturated_fraction",
    "grad_norm",
    "kernel_grad_ratio",
}


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    idx = np.random.default_rng(0).permutation(len(x))[:256]
    return x[idx], data.target[idx].astype("int64")


def _mlp(depth, initializer, width=128, compile=True):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((64,))]
    for i in range(depth - 1):
        layers.append(
            keras.layers.Dense(
                width,
                activation="relu",
                kernel_initializer=initializer(seed=i),
                name=f"d{i}",
            )
        )
    layers.append(
        keras.layers.Dense(
            10,
            activation="softmax",
            kernel_initializer=initializer(seed=99),
            name="out",
        )
    )
    model = keras.Sequential(layers)
    if compile:
        model.compile("sgd", "sparse_categorical_crossentropy")
    return model


# --------------------------------------------------------------------------
# verdicts


def test_small_random_vanishes_he_is_healthy(digits):
    x, y = digits
    small = diagnose(_mlp(20, SmallRandomNormal), x, y)
    he = diagnose(_mlp(20, HeNormal), x, y)
    assert small.verdict == "vanishing"
    assert small.gradient_ratio < 1e-10
    assert he.verdict == "healthy"
    assert 0.1 < he.gradient_ratio < 10
    assert len(he.rows) == 20 and he.rows[0]["name"] == "d0"


def test_vanishing_judged_by_backprop_not_kernel_gradients(digits):
    # 30-layer ReLU MLP with LeCun init: the kernel gradients look balanced,
    # the backpropagated signal has vanished.
    x, y = digits
    report = diagnose(
        _mlp(30, lambda seed: XavierNormal(mode="fan_in", seed=seed)), x, y
    )
    assert report.verdict == "vanishing"
    assert report.gradient_ratio < 1e-3
    kernel_ratio = (
        report.rows[0]["kernel_grad_ratio"] / report.rows[-2]["kernel_grad_ratio"]
    )
    assert 0.2 < kernel_ratio < 5


def test_unit_normal_explodes(digits):
    x, y = digits
    report = diagnose(_mlp(20, lambda seed: RandomNormal(1.0, seed=seed)), x, y)
    assert report.verdict == "exploding"
    deep = diagnose(_mlp(40, lambda seed: RandomNormal(1.0, seed=seed)), x, y)
    assert deep.verdict == "exploding"
    assert not np.isfinite(deep.gradient_ratio) or deep.gradient_ratio > 1e2
    json.dumps(deep.to_dict(), allow_nan=False)  # JSON even when not finite


# --------------------------------------------------------------------------
# the rows, measured independently


def test_rows_match_independent_measurements():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.normal(size=(64, 2)).astype("float32")
    keras.utils.set_random_seed(1)
    layers = [
        keras.layers.Dense(
            5,
            activation="tanh",
            name="t",
            kernel_initializer=keras.initializers.Constant(3.0),
        ),
        keras.layers.Dense(
            4,
            activation="relu",
            name="r",
            bias_initializer=keras.initializers.Constant(-100.0),
        ),
        keras.layers.Dense(3, activation="sigmoid", name="s"),
        keras.layers.Dense(2, name="lin"),
    ]
    model = keras.Sequential([keras.Input((6,)), *layers])
    model.compile("sgd", "mse")
    report = diagnose(model, x, y)
    assert isinstance(report, DiagnosisReport)
    assert [row["name"] for row in report.rows] == ["t", "r", "s", "lin"]
    assert all(set(row) >= ROW_KEYS for row in report.rows)

    # Independent forward and backward pass, layer by layer.
    with tf.GradientTape(persistent=True) as tape:
        hs, h = [], tf.constant(x)
        for layer in layers:
            h = layer(h)
            tape.watch(h)
            hs.append(h)
        loss = tf.reduce_mean(tf.square(h - y))
    for row, layer, h in zip(report.rows, layers, hs, strict=True):
        h_np = np.asarray(h)
        assert row["activation"] == layer.activation.__name__
        assert (row["fan_in"], row["fan_out"]) == tuple(layer.kernel.shape)
        assert row["mean"] == pytest.approx(h_np.mean(), rel=1e-4, abs=1e-7)
        assert row["std"] == pytest.approx(h_np.std(), rel=1e-4, abs=1e-7)
        grad = tape.gradient(loss, h)
        grad_norm = 0.0 if grad is None else float(tf.norm(grad))
        assert row["grad_norm"] == pytest.approx(grad_norm, rel=1e-4, abs=1e-12)
        dw = tape.gradient(loss, layer.kernel)
        ratio = float(tf.norm(dw) / tf.norm(layer.kernel))
        assert row["kernel_grad_ratio"] == pytest.approx(ratio, rel=1e-4, abs=1e-12)
    t, r, s, _ = report.rows
    # x ~ N(0, 1), kernel all 3: |3 * sum of 6| > 2.65 mostly -> saturated
    assert t["saturated_fraction"] == pytest.approx(
        np.mean(np.abs(np.asarray(hs[0])) > 0.99)
    )
    assert t["saturated_fraction"] > 0.5
    assert r["dead_fraction"] == 1.0  # bias -100: every unit off for all
    assert s["saturated_fraction"] == pytest.approx(0.0, abs=0.2)
    # t's units have equal weights (constant 3) and, nothing flowing back
    # through the dead r, equal (zero) gradients: they stay equal for good
    assert report.verdict == "symmetric"
    assert "layers t have units with equal incoming weights" in str(report)


def direction_norm(shape):
    """The norm of the fixed random direction the loss-free pass projects on."""
    return float(np.linalg.norm(np.asarray(keras.random.normal(shape, seed=0))))


def test_without_targets_differentiates_a_fixed_projection_of_the_outputs():
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.Dense(2),
        ]
    )
    x = np.random.default_rng(2).normal(size=(10, 3)).astype("float32")
    report = diagnose(model, x)
    assert report.loss is None
    # d(sum(h * r))/dh is the direction r, a fixed standard normal draw
    expected = direction_norm((10, 2))
    assert report.rows[-1]["grad_norm"] == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(np.sqrt(20))  # not the plain sum's
    # A tuple (x, y) also works for x alone, as the callback's data does.
    assert diagnose(model, (x,)).rows[-1]["grad_norm"] == pytest.approx(
        expected, rel=1e-5
    )


def test_without_targets_a_softmax_output_sends_back_its_logits_projection():
    # The sum of softmax outputs is 1 for any input (and a normalization's
    # centred outputs sum to 0): differentiated as it is, every
    # He-initialized net would read as vanishing.
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16,)),
            *[
                keras.layers.Dense(32, "relu", kernel_initializer="he_normal")
                for _ in range(3)
            ],
            keras.layers.Dense(10, "softmax"),
        ]
    )
    x = np.random.default_rng(3).normal(size=(64, 16)).astype("float32")
    report = diagnose(model, x)
    assert report.verdict == "healthy"
    expected = direction_norm((64, 10))
    assert report.rows[-1]["grad_norm"] == pytest.approx(expected, rel=1e-5)


def test_without_targets_a_layer_normalized_output_still_sends_a_signal():
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(32, "relu"),
            keras.layers.Dense(32),
            keras.layers.LayerNormalization(),
        ]
    )
    x = np.random.default_rng(3).normal(size=(64, 16)).astype("float32")
    report = diagnose(model, x)
    assert report.verdict == "healthy", report.reasons
    assert min(row["grad_norm"] for row in report.rows) > 1e-3


def test_state_and_weights_unchanged(digits):
    x, y = digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    before = [np.array(v) for v in model.variables]
    report = diagnose(model, x, y)
    assert report.verdict == "healthy"
    for a, b in zip(before, model.variables, strict=True):
        np.testing.assert_array_equal(a, np.array(b))


def test_explicit_loss_for_uncompiled_model(digits):
    x, y = digits
    model = _mlp(3, HeNormal, compile=False)
    report = diagnose(model, x, y, loss="sparse_categorical_crossentropy")
    compiled = _mlp(3, HeNormal)
    expected = diagnose(compiled, x, y)
    assert report.loss == pytest.approx(expected.loss, rel=1e-5)
    assert report.rows[0]["grad_norm"] == pytest.approx(
        expected.rows[0]["grad_norm"], rel=1e-5
    )
    assert expected.loss_name == "compiled loss"


def test_an_uncompiled_model_gets_the_documented_default_loss(digits):
    x, y = digits
    # integer labels, softmax output: sparse categorical cross-entropy
    report = diagnose(_mlp(3, HeNormal, compile=False), x, y)
    assert report.loss_name == "sparse_categorical_crossentropy"
    assert report.loss == pytest.approx(
        diagnose(_mlp(3, HeNormal), x, y).loss, rel=1e-5
    )
    assert "sparse_categorical_crossentropy" in report.to_json()

    # integer labels, linear output: the same loss from logits
    logits = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    report = diagnose(logits, x, y)
    assert report.loss_name == "sparse_categorical_crossentropy(from_logits=True)"
    z = np.asarray(logits(x))
    expected = np.mean(
        np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y.astype(int)]
    )
    assert report.loss == pytest.approx(expected, rel=1e-4)

    # one sigmoid unit: binary cross-entropy; real targets: mean squared error
    binary = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(1, activation="sigmoid")]
    )
    assert diagnose(binary, x, (y > 4)[:, None].astype("float32")).loss_name == (
        "binary_crossentropy"
    )
    regression = keras.Sequential([keras.Input((64,)), keras.layers.Dense(3)])
    targets = np.ones((len(x), 3), "float32")
    report = diagnose(regression, x, targets)
    assert report.loss_name == "mean_squared_error"
    assert report.loss == pytest.approx(
        np.mean((np.asarray(regression(x)) - 1.0) ** 2), rel=1e-5
    )


def test_loss_under_mirrored_strategy_scope(digits, mirrored_strategy):
    # Under a strategy scope Keras divides a mean loss by the replica count;
    # diagnose computes the whole batch on one device, so it must undo that
    # for the compiled loss and for a `Loss` object passed as `loss=`.
    x, y = digits
    loss = keras.losses.SparseCategoricalCrossentropy()
    expected = diagnose(_mlp(3, HeNormal), x, y, loss=loss)
    with mirrored_strategy.scope():
        model = _mlp(3, HeNormal)
        compiled = diagnose(model, x, y)
        explicit = diagnose(model, x, y, loss=loss)
        summed = diagnose(
            model,
            x,
            y,
            loss=keras.losses.SparseCategoricalCrossentropy(reduction="sum"),
        )
    assert compiled.loss == pytest.approx(expected.loss, rel=1e-5)
    assert explicit.loss == pytest.approx(expected.loss, rel=1e-5)
    assert summed.loss == pytest.approx(expected.loss * len(x), rel=1e-5)
    assert explicit.rows[0]["grad_norm"] == pytest.approx(
        expected.rows[0]["grad_norm"], rel=1e-4
    )


def test_regularization_under_mirrored_strategy_scope(digits, mirrored_strategy):
    # Keras's TF trainer divides the regularization losses by the replica
    # count too: both loss paths must give cross-entropy + regularization.
    x, y = digits

    def model():
        keras.utils.set_random_seed(0)
        net = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(
                    32, "relu", kernel_regularizer=keras.regularizers.L2(0.5)
                ),
                keras.layers.Dense(10, "softmax"),
            ]
        )
        net.compile("sgd", "sparse_categorical_crossentropy")
        return net

    loss = keras.losses.SparseCategoricalCrossentropy()
    plain = model()
    expected = diagnose(plain, x, y)
    penalty = 0.5 * float(np.sum(np.square(plain.layers[0].kernel)))
    assert expected.loss - diagnose(plain, x, y, loss=loss).loss == pytest.approx(0)
    assert expected.loss > penalty > 1.0  # the penalty is a large part of it
    with mirrored_strategy.scope():
        distributed = model()
        compiled = diagnose(distributed, x, y)
        explicit = diagnose(distributed, x, y, loss=loss)
    assert compiled.loss == pytest.approx(expected.loss, rel=1e-5)
    assert explicit.loss == pytest.approx(expected.loss, rel=1e-5)
    assert compiled.rows[0]["grad_norm"] == pytest.approx(
        expected.rows[0]["grad_norm"], rel=1e-4
    )


# --------------------------------------------------------------------------
# report outputs


def test_str_to_dict_and_plot(tmp_path, digits):
    x, y = digits
    report = diagnose(_mlp(5, SmallRandomNormal), x, y)
    text = str(report)
    assert "d0" in text and "out" in text and "verdict: vanishing" in text
    assert "fan_in" in text
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["verdict"] == "vanishing"
    assert data["gradient_ratio"] == pytest.approx(report.gradient_ratio)
    assert [r["name"] for r in data["rows"]] == [r["name"] for r in report.rows]
    path = report.plot(tmp_path / "sub" / "diagnosis.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------
# bad input


def test_data_that_does_not_fit(digits):
    x, y = digits
    model = _mlp(3, HeNormal)
    with pytest.raises(ValueError, match=r"`x` does not fit.*\(256, 10\)"):
        diagnose(model, x[:, :10], y)
    with pytest.raises(ValueError, match="same number of samples"):
        diagnose(model, x, y[:5])
    with pytest.raises(ValueError, match="do not fit"):
        diagnose(model, x, np.zeros((256, 3, 2)))
    with pytest.raises(ValueError, match="x"):
        diagnose(model, np.full((4, 64), np.nan), y[:4])
    with pytest.raises(ValueError, match="model"):
        diagnose("not a model", x, y)
    no_kernel = keras.Sequential([keras.Input((64,)), keras.layers.Activation("relu")])
    with pytest.raises(ValueError, match="kernel"):
        diagnose(no_kernel, x)
