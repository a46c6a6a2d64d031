"""Tests of `keras_weightinit.pretraining`: `pretrain_dbn`.

The callback that runs it, `DBNPretrain`, is tested in `test_callbacks.py`.
"""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_weightinit import RBM, pretrain_dbn, pretraining

FAST = {"epochs": 2, "seed": 0}


def layer_io(model, layer, x):
    probe = keras.Model(model.inputs[0], [layer.input, layer.output])
    return [np.asarray(t) for t in probe(x)]


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_dense_output_equals_rbm_hidden_means(digits, fitted_rbms, activation, mlp):
    x, _ = digits[0][:600], digits[1][:600]
    model = mlp(activation)
    histories = pretrain_dbn(model, x, verbose=0, **FAST)
    dense = [lay for lay in model.layers if isinstance(lay, keras.layers.Dense)]
    assert list(histories) == [dense[0].name, dense[1].name]
    assert len(fitted_rbms) == 2
    expected_hidden = "relu" if activation == "relu" else "bernoulli"
    for (rbm, v, _), layer in zip(fitted_rbms, dense[:2], strict=True):
        assert rbm.hidden == expected_hidden
        u, out = layer_io(model, layer, x)
        if rbm.visible == "gaussian":
            # The layer sees the raw input; the RBM saw it standardized.
            np.testing.assert_allclose(v.mean(0), 0, atol=1e-4)
        means = rbm.transform(v)
        if activation == "tanh":
            means = 2 * means - 1  # spins s = 2h - 1
        np.testing.assert_allclose(out, means, atol=2e-5)
    first, second = fitted_rbms
    assert first[0].visible == "bernoulli"  # digits / 16 are in [0, 1]
    np.testing.assert_allclose(first[1], x)
    if activation == "sigmoid":
        # DBN recipe: the RBM above trains on fresh samples of the states.
        assert second[0].visible == "bernoulli"
        assert second[2]["sample_inputs"] is True
    elif activation == "tanh":
        assert second[0].visible == "bernoulli"
        assert second[2]["sample_inputs"] is True
        u, _ = layer_io(model, dense[1], x)
        np.testing.assert_allclose(second[1], (u + 1) / 2, atol=1e-6)
    else:
        assert second[0].visible == "gaussian"
        assert second[2]["sample_inputs"] is False


def test_gaussian_visible_fold_on_raw_data(digits, fitted_rbms, mlp):
    x, _ = digits[0][:600], digits[1][:600]
    raw = x * 16  # 0..16: not in [0, 1], so Gaussian visible units
    model = mlp("sigmoid", widths=(16,))
    pretrain_dbn(model, raw, verbose=0, **FAST)
    rbm, v, _ = fitted_rbms[0]
    assert rbm.visible == "gaussian"
    np.testing.assert_allclose(v.std(0)[raw.std(0) > 1], 1, atol=1e-4)
    _, out = layer_io(model, model.layers[1], raw)
    np.testing.assert_allclose(out, rbm.transform(v), atol=2e-5)
    with pytest.raises(ValueError, match=r"visible='bernoulli'.*\[0, 1\]"):
        pretrain_dbn(mlp(), raw, visible="bernoulli", verbose=0, **FAST)


def test_sequential_unbuilt_with_layers_in_between(digits):
    x = digits[0][:600]
    images = (x * 16).reshape(-1, 8, 8)
    model = keras.Sequential(
        [
            keras.layers.Rescaling(1 / 16),
            keras.layers.Flatten(),
            keras.layers.Dense(20, activation="sigmoid", name="h1"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(20, activation="sigmoid", name="h2"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ]
    )
    assert not model.built
    histories = pretrain_dbn(model, images, verbose=0, **FAST)
    assert model.built
    assert list(histories) == ["h1", "h2"]
    # A named subset: only that layer changes.
    out_kernel = model.get_layer("out").kernel.numpy().copy()
    h1_kernel = model.get_layer("h1").kernel.numpy().copy()
    pretrain_dbn(model, images, layers=["h2"], verbose=0, **FAST)
    np.testing.assert_array_equal(model.get_layer("h1").kernel.numpy(), h1_kernel)
    np.testing.assert_array_equal(model.get_layer("out").kernel.numpy(), out_kernel)


def test_dataset_and_pydataset_inputs(digits, fitted_rbms, mlp):
    x, y = digits[0][:600], digits[1][:600]

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return x[i * 200 : (i + 1) * 200], y[i * 200 : (i + 1) * 200]

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(128)
    pretrain_dbn(mlp(widths=(8,)), ds, verbose=0, **FAST)
    pretrain_dbn(mlp(widths=(8,)), Batches(), verbose=0, **FAST)
    np.testing.assert_allclose(fitted_rbms[0][1], x)
    np.testing.assert_allclose(fitted_rbms[1][1], x)


def snapshot(model):
    return [w.copy() for w in model.get_weights()]


def assert_same(model, weights):
    for got, want in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_leaves_weights_untouched(digits, monkeypatch, error, mlp):
    x, _ = digits[0][:600], digits[1][:600]
    model = mlp()
    weights = snapshot(model)
    original = RBM.fit
    calls = []

    def failing_fit(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # after the first layer was pretrained and set
            raise error("boom")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RBM, "fit", failing_fit)
    with pytest.raises(error):
        pretrain_dbn(model, x, verbose=0, **FAST)
    assert len(calls) == 2
    assert_same(model, weights)


def test_divergence_restores_weights(digits, mlp):
    x, _ = digits[0][:600], digits[1][:600]
    model = mlp()
    weights = snapshot(model)
    with pytest.raises(FloatingPointError, match="learning_rate"):
        pretrain_dbn(model, x * 1e4, learning_rate=1e3, verbose=0, **FAST)
    assert_same(model, weights)


def no_dense_hidden(mlp):
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])


@pytest.mark.parametrize(
    "make_model, x, kwargs, match",
    [
        (no_dense_hidden, None, {}, "no Dense layer to pretrain"),
        (lambda mlp: mlp(), None, {"layers": ["nope"]}, "no layer named 'nope'"),
        (
            lambda mlp: keras.Sequential(
                [
                    keras.Input((8, 8)),
                    keras.layers.Flatten(name="flat"),
                    keras.layers.Dense(4, activation="sigmoid"),
                    keras.layers.Dense(2),
                ]
            ),
            np.zeros((4, 8, 8), "float32"),
            {"layers": ["flat"]},
            "'flat' is a Flatten, not a Dense",
        ),
        (lambda mlp: mlp(), np.full((4, 64), np.nan, "float32"), {}, "NaN or infinite"),
        (
            lambda mlp: mlp(),
            np.zeros((4, 63), "float32"),
            {},
            r"inputs of shape \(None, 64\).*shape \(4, 63\)",
        ),
        (
            lambda mlp: mlp(),
            np.full((4, 64), 2.0, "float32"),
            {"visible": "bernoulli"},
            r"\[0, 1\]",
        ),
        (
            lambda mlp: mlp(),
            tf.data.Dataset.from_tensor_slices(np.zeros((0, 64))).batch(4),
            {},
            "no samples",
        ),
        (lambda mlp: mlp("softmax"), None, {}, "activation 'softmax'"),
        (
            lambda mlp: mlp(),
            None,
            {"epochs": 0},
            r"`epochs` must be a positive int.*epochs=0",
        ),
        (lambda mlp: mlp(), None, {"batch_size": 0}, r"batch_size=0"),
        (lambda mlp: mlp(), None, {"learning_rate": -0.1}, r"learning_rate=-0.1"),
        (lambda mlp: mlp(), None, {"visible": "binary"}, "visible"),
        (lambda mlp: mlp(), None, {"hidden": "relu"}, "set per layer"),
    ],
)
def test_bad_input(digits, make_model, x, kwargs, match, mlp):
    model = make_model(mlp)
    weights = snapshot(model)
    data = digits[0][:600] if x is None else x
    with pytest.raises(ValueError, match=match):
        pretrain_dbn(model, data, verbose=0, **kwargs)
    assert_same(model, weights)


def test_verbose_and_tensorboard(digits, tmp_path, capsys, mlp):
    x, _ = digits[0][:600], digits[1][:600]
    model = mlp(widths=(12, 12))
    pretrain_dbn(model, x, verbose=1, log_dir=str(tmp_path), **FAST)
    printed = capsys.readouterr().out
    assert "reconstruction_error" in printed
    assert "pretrain/" + model.layers[1].name in printed
    events = glob.glob(os.path.join(tmp_path, "events.out.tfevents*"))
    tags = set()
    for path in events:
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    name = model.layers[1].name
    assert f"pretrain/{name}/reconstruction_error" in tags
    assert f"pretrain/{model.layers[2].name}/free_energy" in tags
    assert f"pretrain/{name}/filters" in tags  # 64 inputs: 8x8 images
    pretrain_dbn(mlp(widths=(12,)), x, verbose=0, **FAST)
    assert capsys.readouterr().out == ""


def sampled(fitted_rbms) -> dict:
    """`{layer name: whether its RBM trained on sampled states of the one below}`."""
    return {
        kwargs["name"].removeprefix("pretrain/"): kwargs["sample_inputs"]
        for _, _, kwargs in fitted_rbms
    }


def test_the_layer_below_is_the_one_feeding_the_layer_even_with_gaps(
    digits, fitted_rbms
):
    x, _ = digits[0][:600], digits[1][:600]
    inputs = keras.Input((64,))
    h = keras.layers.Dense(16, activation="tanh", name="d1")(inputs)
    h = keras.layers.Dense(16, activation="sigmoid", name="d2")(h)
    h = keras.layers.Dense(16, activation="sigmoid", name="d3")(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="out")(h))
    pretrain_dbn(model, x, layers=["d1", "d3"], verbose=0, **FAST)
    # d3 is fed by d2 (sigmoid): sampled states; d1 by the data
    assert sampled(fitted_rbms) == {"d1": False, "d3": True}


def test_the_layer_below_follows_the_graph_not_the_layer_order(digits, fitted_rbms):
    x, _ = digits[0][:600], digits[1][:600]
    inputs = keras.Input((64,))
    a = keras.layers.Dense(16, activation="tanh", name="a")(inputs)
    b = keras.layers.Dense(16, activation="relu", name="b")(inputs)
    c = keras.layers.Dense(16, activation="sigmoid", name="c")(a)
    d = keras.layers.Dropout(0.1)(keras.layers.Flatten()(c))
    d = keras.layers.Dense(16, activation="sigmoid", name="d")(d)
    merged = keras.layers.Concatenate()([b, d])
    e = keras.layers.Dense(16, activation="sigmoid", name="e")(merged)
    model = keras.Model(inputs, keras.layers.Dense(10, name="out")(e))
    pretrain_dbn(model, x, verbose=0, **FAST)
    # c is fed by a (tanh: spins mapped to [0, 1] and sampled), not by b
    # (relu: Gaussian visible units, not sampled), the Dense listed before it.
    assert sampled(fitted_rbms) == {
        "a": False,
        "b": False,
        "c": True,
        "d": True,
        "e": False,
    }
    rbm_c, v_c, _ = fitted_rbms[2]
    assert rbm_c.visible == "bernoulli" and v_c.min() >= 0 and v_c.max() <= 1


def test_layers_get_independent_seeds(digits, fitted_rbms, mlp):
    x, _ = digits[0][:600], digits[1][:600]
    pretrain_dbn(mlp(widths=(24, 24, 24)), x, verbose=0, **FAST)
    seeds = [rbm.seed for rbm, _, _ in fitted_rbms]
    assert len(set(seeds)) == 3 and 1 not in seeds


def test_gaussian_scales_are_floored_by_the_varying_features():
    # Below a ReLU layer with most units dead: 40 constant features, one
    # near-constant (std 1e-5), 23 of std about 1 (so not in [0, 1]).
    rng = np.random.default_rng(0)
    u = np.zeros((500, 64), "float32")
    u[:, 40] = 1e-5 * rng.standard_normal(500)
    u[:, 41:] = rng.standard_normal((500, 23))
    visible, shift, scale, sample = pretraining.choose_visible(u, "auto", "relu", "l")
    assert visible == "gaussian" and not sample
    median = float(np.median(u[:, 40:].std(axis=0)))  # of the varying ones
    # The near-constant feature is not blown up by 1e5 in `W / sigma`.
    assert scale[40] == pytest.approx(0.1 * median, rel=1e-5)
    assert np.all(scale[:40] == scale[40])
    np.testing.assert_allclose(scale[41:], u[:, 41:].std(axis=0), rtol=1e-5)
    np.testing.assert_allclose(shift, u.mean(axis=0), atol=1e-6)


def test_a_feature_of_one_value_has_variance_zero_not_float32_rounding():
    # Dead-ReLU-like inputs: each column one value, whose float32 std is not 0
    # (up to 1e-4 of the mean), which used to set the floor to 1e-6.
    values = np.array([0.1718889, 0.1373475, 0.2009277, 0.3583918], "float32")
    u = np.tile(values, (5000, 16))
    assert u.std(axis=0).max() > 0  # the rounding this test is about
    visible, shift, scale, _ = pretraining.choose_visible(u, "auto", "relu", "l")
    assert visible == "gaussian"
    np.testing.assert_array_equal(scale, 1)  # no feature varies: the floor is 1
    np.testing.assert_array_equal(shift, u[0])  # so v = 0 exactly
