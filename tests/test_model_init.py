"""Tests of `initialize`, `lsuv` and `LSUVInit` (issue 6)."""

import math
import warnings

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import keras_weightinit as kw
from keras_weightinit import graph
from keras_weightinit.probe import observe

RNG = np.random.default_rng(0)
X = RNG.standard_normal((128, 16)).astype("float32")


def mlp(depth=6, width=32, activation="relu", init="small_random", seed=0, **dense):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((16,))]
    for i in range(depth - 1):
        layers.append(
            keras.layers.Dense(
                width,
                activation=activation,
                kernel_initializer=kw.get_scheme(init, seed * 100 + i),
                **dense,
            )
        )
    layers.append(keras.layers.Dense(10, activation="softmax"))
    return keras.Sequential(layers)


def weights(model):
    return [np.array(w) for w in model.get_weights()]


def assert_same(before, model):
    after = model.get_weights()
    assert len(before) == len(after)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


def pre_activation_variances(model, x):
    """Var(x_in @ W + b) of each Dense/Conv layer, computed independently."""
    layers = [layer for layer in model.layers if hasattr(layer, "kernel")]
    extractor = keras.Model(model.inputs[0], [layer.input for layer in layers])
    inputs = extractor(x, training=False)
    out = {}
    for layer, inp in zip(layers, inputs, strict=True):
        inp = np.asarray(inp)
        if isinstance(layer, keras.layers.Dense):
            z = inp @ np.asarray(layer.kernel) + np.asarray(layer.bias)
        else:
            linear = layer.activation
            layer.activation = keras.activations.linear  # test-only shortcut
            try:
                z = np.asarray(layer.call(inp))
            finally:
                layer.activation = linear
        out[layer.name] = float(np.var(z))
    return out


# --------------------------------------------------------------------------
# lsuv


def test_lsuv_gives_unit_variance_in_every_layer():
    model = mlp(depth=8)
    report = kw.lsuv(model, X, tol=0.05, seed=0)
    assert list(report) == [layer.name for layer in model.layers]
    measured = pre_activation_variances(model, X)
    for name, var in measured.items():
        assert abs(var - 1) < 0.05, (name, var)
        assert report[name]["var_after"] == pytest.approx(var, rel=1e-4)
        assert report[name]["converged"]
        assert 1 <= report[name]["iterations"] <= 10
    # the orthogonal pre-init of a unit-variance input is not yet unit variance
    # deeper in a ReLU net: LSUV had to rescale
    assert any(abs(r["var_before"] - 1) > 0.2 for r in report.values())
    assert report.not_converged == []
    # the biases were zeroed by the orthogonal pre-initialization
    assert all(not np.any(np.asarray(layer.bias)) for layer in model.layers)


def test_lsuv_functional_conv_with_batchnorm_and_skipped_layers():
    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(6, 3, padding="same", use_bias=False)(inp)
    h = keras.layers.BatchNormalization(
        beta_initializer="ones", moving_variance_initializer="ones"
    )(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(8, 3, activation="relu")(h)
    h = keras.layers.Flatten()(h)
    out = keras.layers.Dense(10)(h)
    model = keras.Model(inp, out)
    bn = model.layers[2]
    bn_before = [np.array(w) for w in bn.weights]
    x = RNG.random((64, 8, 8, 1)).astype("float32")

    report = kw.lsuv(model, x, tol=0.1, seed=0)

    kernel_layers = [layer.name for layer in model.layers if hasattr(layer, "kernel")]
    assert list(report) == kernel_layers  # pooling, BN, Flatten, ReLU skipped
    for name, var in pre_activation_variances(model, x).items():
        assert abs(var - 1) < 0.1, (name, var)
    for a, b in zip(bn_before, bn.weights, strict=True):  # BN left alone
        np.testing.assert_array_equal(a, np.asarray(b))


def test_lsuv_without_orthogonal_only_rescales():
    model = mlp(depth=4, init="he")
    before = [np.array(layer.kernel) for layer in model.layers]
    report = kw.lsuv(model, X, orthogonal=False)
    for layer, kernel in zip(model.layers, before, strict=True):
        ratio = np.asarray(layer.kernel) / kernel
        np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-4)
        assert ratio.flat[0] > 0
    assert all(r["converged"] for r in report.values())


def test_lsuv_reports_layers_that_do_not_converge():
    # random biases add variance that scaling the kernel cannot remove
    model = mlp(
        depth=3, init="he", bias_initializer=keras.initializers.RandomNormal(0, 3)
    )
    with pytest.warns(UserWarning, match="did not reach variance"):
        report = kw.lsuv(model, X, orthogonal=False, max_iters=3)
    first = model.layers[0].name
    assert first in report.not_converged
    assert report[first]["iterations"] == 3
    assert report[first]["var_after"] > 1.1
    assert "NO" in str(report)


def test_lsuv_is_reproducible_with_a_seed():
    a, b = mlp(depth=4), mlp(depth=4, seed=5)
    kw.lsuv(a, X, seed=3)
    kw.lsuv(b, X, seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-7)


def test_lsuv_on_a_chain_runs_each_layer_once_with_the_prefix_reruns_result(
    monkeypatch,
):
    # Biased layers (not linear in the kernel, so every rescaling measures
    # again) in a chain with a BatchNorm and a Flatten between them.
    def model():
        keras.utils.set_random_seed(2)
        bias = keras.initializers.RandomNormal(0.0, 0.5)
        return keras.Sequential(
            [
                keras.Input((4, 4)),
                keras.layers.Flatten(),
                keras.layers.Dense(32, activation="relu", bias_initializer=bias),
                keras.layers.BatchNormalization(),
                keras.layers.Dense(32, activation="tanh", bias_initializer=bias),
                keras.layers.Dense(10, bias_initializer=bias),
            ]
        )

    calls = {}

    def counted(layer):
        original = type(layer).call

        def call(self, *args, **kwargs):
            calls[self.name] = calls.get(self.name, 0) + 1
            return original(self, *args, **kwargs)

        monkeypatch.setattr(type(layer), "call", call)

    x = X.reshape(-1, 4, 4)
    fast = model()
    assert graph.chain(fast) == fast.layers
    counted(fast.layers[0])  # Flatten, the first step
    fast_report = kw.lsuv(fast, x, tol=0.01, orthogonal=False, seed=0)
    flatten_calls = calls.pop(fast.layers[0].name)
    monkeypatch.setattr(graph, "chain", lambda model: None)
    slow = model()
    counted(slow.layers[0])
    slow_report = kw.lsuv(slow, x, tol=0.01, orthogonal=False, seed=0)
    rows = [
        [{k: v for k, v in row.items() if k != "weight"} for row in report.values()]
        for report in (fast_report, slow_report)
    ]
    assert rows[0] == rows[1]
    assert sum(r["iterations"] for r in slow_report.values()) > 3
    for a, b in zip(fast.get_weights(), slow.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # The first step ran a fixed number of times, not once per measure.
    assert flatten_calls <= 3 < calls[slow.layers[0].name]


def test_lsuv_on_models_that_are_not_chains_or_hold_units_in_steps():
    inp = keras.Input((16,))
    h = keras.layers.Dense(16, activation="relu")(inp)
    out = keras.layers.Dense(4)(keras.layers.Add()([h, inp]))
    residual = keras.Model(inp, out)
    inner = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8)])
    nested = keras.Sequential([keras.Input((16,)), keras.layers.Dense(16), inner])
    assert graph.chain(residual) is None
    assert graph.chain(nested) == nested.layers  # a unit inside a step
    for model in (residual, nested):
        report = kw.lsuv(model, X, seed=0)
        assert report.not_converged == []


def test_lsuv_failure_leaves_weights_untouched():
    model = mlp(depth=5)
    before = weights(model)

    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kw.lsuv(model, bad)
    with pytest.raises(
        ValueError, match=r"shape \(None, 16\).*x with shape \(128, 15\)"
    ):
        kw.lsuv(model, X[:, :15])
    with pytest.raises(ValueError, match="Received: tol=0"):
        kw.lsuv(model, X, tol=0)
    with pytest.raises(ValueError, match="Received: max_iters=0"):
        kw.lsuv(model, X, max_iters=0)
    with pytest.raises(ValueError, match="variance 0"):
        kw.lsuv(model, np.zeros_like(X))  # fails after the orthogonal pre-init
    assert_same(before, model)

    # an interrupt half-way through the layers: in lsuv's 6th forward pass
    calls = {"n": 0}

    def interrupted(t):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return t

    watched = keras.Sequential(
        [keras.Input((16,)), keras.layers.Lambda(interrupted), *model.layers]
    )
    before = weights(watched)
    with pytest.raises(KeyboardInterrupt):
        kw.lsuv(watched, X)
    assert calls["n"] == 6
    assert_same(before, watched)


def test_lsuv_mid_way_error_in_a_functional_model_restores():
    inp = keras.Input((16,))
    h = keras.layers.Dense(8, activation="tanh")(inp)
    h = keras.layers.Dense(8)(h)
    h = keras.layers.Lambda(lambda t: t * 0.0)(h)  # kills the signal
    out = keras.layers.Dense(4)(h)
    model = keras.Model(inp, out)
    before = weights(model)
    with pytest.raises(ValueError, match=r"layer '.*' has variance 0"):
        kw.lsuv(model, X)
    assert_same(before, model)


def test_lsuv_rejects_models_it_cannot_handle():
    no_kernels = keras.Sequential([keras.Input((16,)), keras.layers.Activation("relu")])
    with pytest.raises(ValueError, match="at least one kernel-like weight"):
        kw.lsuv(no_kernels, X)
    with pytest.raises(ValueError, match="Argument `model`"):
        kw.lsuv("model", X)
    a, b = keras.Input((16,)), keras.Input((16,))
    two = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Add()([a, b])))
    # a model of two inputs takes two arrays, as `fit` does; one is refused
    with pytest.raises(ValueError, match=r"the model's 2 inputs.*Received: 1 arrays"):
        kw.lsuv(two, X)
    assert kw.lsuv(two, [X, X], seed=0).not_converged == []


@pytest.mark.parametrize(
    "layer, shape",
    [
        (keras.layers.Conv1D(4, 3, padding="causal", dilation_rate=2), (5, 10, 3)),
        (keras.layers.Conv2D(4, 3, strides=2, padding="same"), (5, 9, 9, 3)),
        (keras.layers.Conv2DTranspose(4, 3, strides=2), (5, 6, 6, 3)),
        (keras.layers.Dense(4, bias_initializer="ones"), (5, 7, 3)),
    ],
    ids=["conv1d_causal", "conv2d", "conv2d_transpose", "dense_3d"],
)
def test_pre_activation_matches_the_layer_without_activation(layer, shape):
    x = RNG.standard_normal(shape).astype("float32")
    expected = np.asarray(layer(x))  # these layers have no activation
    layer.activation = keras.activations.relu
    with observe([layer]) as seen:
        layer(x)
    np.testing.assert_allclose(np.asarray(seen.pre[id(layer)]), expected, atol=1e-5)
    assert "call" not in vars(layer)


# --------------------------------------------------------------------------
# initialize


def test_initialize_auto_picks_the_documented_initializer():
    inp = keras.Input((256,))
    acts = [
        "relu",
        "leaky_relu",
        "elu",
        "gelu",
        "swish",
        "tanh",
        "selu",
        "sigmoid",
        None,
    ]
    outs = [keras.layers.Dense(256, activation=a, name=f"d_{a}")(inp) for a in acts]
    h = keras.layers.Dense(256, name="then_leaky")(inp)
    h = keras.layers.LeakyReLU(negative_slope=0.1)(h)
    g = keras.layers.Dense(256, name="then_bn_tanh")(h)
    g = keras.layers.BatchNormalization()(g)
    g = keras.layers.Activation("tanh")(g)
    img = keras.layers.Reshape((16, 16, 1))(inp)
    c = keras.layers.Conv2D(256, 3, activation="relu", name="conv_relu")(img)
    c = keras.layers.Flatten()(c)
    model = keras.Model(inp, [*outs, g, c])
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(np.ones(layer.bias.shape))

    used = kw.initialize(model, "auto", seed=0)

    def kind(name):
        init = used[f"{name}/kernel"]
        return type(init).__name__, {
            k: v for k, v in init.get_config().items() if k != "seed"
        }

    he = ("HeNormal", {"negative_slope": 0.0, "mode": "fan_in"})
    for name in ["d_relu", "d_elu", "d_gelu", "d_swish", "conv_relu"]:
        assert kind(name) == he, name
    assert kind("d_leaky_relu") == (
        "HeNormal",
        {"negative_slope": 0.2, "mode": "fan_in"},
    )
    assert kind("then_leaky") == ("HeNormal", {"negative_slope": 0.1, "mode": "fan_in"})
    assert kind("d_tanh") == ("XavierNormal", {"gain": "tanh", "mode": "fan_avg"})
    assert kind("then_bn_tanh") == kind("d_tanh")
    assert kind("d_selu") == ("XavierNormal", {"gain": 1.0, "mode": "fan_in"})
    # linear and sigmoid outputs are readouts: N(0, 0.1 ln(2) / fan_in)
    readout = ("RandomNormal", {"stddev": math.sqrt(0.1 * math.log(256) / 256)})
    assert kind("d_sigmoid") == kind("d_None") == readout

    # the values really are those scales, and the biases are zero
    layers = {layer.name: layer for layer in model.layers}
    expected_std = {
        "d_relu": math.sqrt(2 / 256),
        "d_leaky_relu": math.sqrt(2 / (1.04 * 256)),
        "d_tanh": 5 / 3 / math.sqrt(256),
        "d_selu": 1 / math.sqrt(256),
        "conv_relu": math.sqrt(2 / 9),
    }
    for name, std in expected_std.items():
        kernel = np.asarray(layers[name].kernel)
        tolerance = 4 / math.sqrt(2 * kernel.size)  # 4 standard errors
        assert np.std(kernel) == pytest.approx(std, rel=tolerance), name
    assert len(used) == 12
    for layer in layers.values():
        if getattr(layer, "bias", None) is not None:
            assert not np.any(np.asarray(layer.bias)), layer.name


def test_hidden_linear_and_sigmoid_layers_get_glorot_and_the_head_the_readout_rule():
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, name="linear"),
            keras.layers.Dense(64, activation="sigmoid", name="sigmoid"),
            keras.layers.Dense(10, activation="softmax", name="head"),
        ]
    )
    used = kw.initialize(model, "auto", seed=0)
    names = {path.split("/")[-2]: type(init).__name__ for path, init in used.items()}
    assert names == {
        "linear": "XavierNormal",
        "sigmoid": "XavierNormal",
        "head": "RandomNormal",
    }
    assert used.rules[model.get_layer("head").kernel.path].startswith("auto (readout)")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 64)).astype("float32")
    y = rng.integers(0, 10, 512)
    loss = keras.losses.sparse_categorical_crossentropy(y, model(x))
    assert float(np.mean(loss)) == pytest.approx(math.log(10), rel=0.02)


@pytest.mark.parametrize("scheme", ["he", "orthogonal"])
def test_initialize_draws_transposed_kernels_with_their_forward_fans(scheme):
    # Kernel (3, 3, 64, 4): 4 channels in, so fan_in = 36, not 576.
    model = keras.Sequential(
        [keras.Input((8, 8, 4)), keras.layers.Conv2DTranspose(64, 3, name="up")]
    )
    kw.initialize(model, scheme, seed=0)
    kernel = np.asarray(model.get_layer("up").kernel)
    if scheme == "he":
        tolerance = 4 / math.sqrt(2 * kernel.size)
        assert np.std(kernel) == pytest.approx(math.sqrt(2 / 36), rel=tolerance)
    else:  # the forward map (36 inputs -> 64 outputs) is a semi-orthogonal one
        forward = np.swapaxes(kernel, -1, -2).reshape(36, 64)
        np.testing.assert_allclose(forward @ forward.T, np.eye(36), atol=1e-5)


def test_initialize_seeds_scheme_names_and_instances():
    a, b = mlp(depth=4, width=16), mlp(depth=4, width=16, seed=9)
    kw.initialize(a, "he", seed=1)
    kw.initialize(b, "he", seed=1)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    k1, k2 = (np.asarray(layer.kernel) for layer in a.layers[1:3])  # 16x16 each
    assert not np.allclose(k1, k2)  # different layers, different draws

    for scheme in [kw.HeNormal(seed=4), keras.initializers.HeNormal(seed=4)]:
        used = kw.initialize(a, scheme)
        k1, k2 = (np.asarray(layer.kernel) for layer in a.layers[1:3])
        assert not np.allclose(k1, k2), scheme
        assert len({id(init) for init in used.values()}) == len(used)
    kw.initialize(a, kw.HeNormal(seed=4))  # the instance's seed: reproducible
    kw.initialize(b, kw.HeNormal(seed=4))
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)

    kw.initialize(a, keras.initializers.HeNormal())  # Keras's repeat per call
    k1, k2 = (np.asarray(layer.kernel) for layer in a.layers[1:3])
    assert not np.allclose(k1, k2)

    used = kw.initialize(a, "orthogonal", seed=0)
    kernel = np.asarray(a.layers[1].kernel)
    np.testing.assert_allclose(kernel.T @ kernel, np.eye(16), atol=1e-5)
    assert all(type(init).__name__ == "Orthogonal" for init in used.values())


def test_initialize_covers_nested_models():
    inner = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(8, activation="tanh")]
    )
    inp = keras.Input((16,))
    model = keras.Model(inp, keras.layers.Dense(2)(inner(inp)))
    used = kw.initialize(model, seed=0)
    assert type(used[inner.layers[0].kernel.path]).__name__ == "XavierNormal"
    assert used[inner.layers[0].kernel.path].gain == "tanh"
    assert len(used) == 2

    chain = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("selu"),
        ]
    )
    (init,) = kw.initialize(chain, seed=0).values()
    assert (type(init).__name__, init.mode) == ("XavierNormal", "fan_in")  # LeCun


def test_initialize_errors_leave_the_model_unchanged():
    model = mlp(depth=3)
    before = weights(model)
    with pytest.raises(ValueError, match=r"Known schemes: auto, zeros.*scheme='bogus'"):
        kw.initialize(model, "bogus")
    with pytest.raises(ValueError, match="Argument `scheme`"):
        kw.initialize(model, 3)
    with pytest.raises(ValueError, match="Received: seed=-1"):
        kw.initialize(model, seed=-1)
    assert_same(before, model)

    unbuilt = keras.Sequential([keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="not built"):
        kw.initialize(unbuilt)
    empty = keras.Sequential([keras.Input((4,)), keras.layers.Flatten()])
    with pytest.raises(ValueError, match="at least one kernel-like weight"):
        kw.initialize(empty)


def test_initialize_warns_on_an_unknown_activation():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4, activation=lambda t: t**3)]
    )
    with pytest.warns(UserWarning, match="unknown activation"):
        used = kw.initialize(model, seed=0)
    assert type(next(iter(used.values()))).__name__ == "XavierNormal"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        kw.initialize(mlp(depth=2), seed=0)  # known activations: no warning


# --------------------------------------------------------------------------
# the learning experiment


@pytest.mark.slow
def test_deep_relu_mlp_learns_after_auto_and_lsuv_but_not_small_random():
    digits = load_digits()
    x = (digits.data / 16).astype("float32")
    y = digits.target

    def train(how):
        keras.utils.set_random_seed(0)
        layers = [keras.Input((64,))]
        for i in range(29):
            layers.append(
                keras.layers.Dense(
                    64,
                    activation="relu",
                    kernel_initializer=kw.get_scheme("small_random", i),
                )
            )
        layers.append(keras.layers.Dense(10, activation="softmax"))
        model = keras.Sequential(layers)
        if how == "auto":
            kw.initialize(model, "auto", seed=0)
        elif how == "lsuv":
            kw.lsuv(model, x[:256], seed=0)
        model.compile(
            keras.optimizers.SGD(0.003, momentum=0.9),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
        return max(history.history["accuracy"])

    small = train("small_random")
    assert small < 0.15  # chance is 0.1: the signal vanishes in 30 layers
    assert train("auto") > 0.4
    assert train("lsuv") > 0.4


def test_a_seed_generator_gives_every_layer_its_own_draw():
    model = keras.Sequential(
        [keras.Input((16,))] + [keras.layers.Dense(16) for _ in range(3)]
    )
    kw.initialize(
        model, keras.initializers.GlorotNormal(), seed=keras.random.SeedGenerator(1)
    )
    kernels = [layer.kernel.numpy() for layer in model.layers]
    assert not np.allclose(kernels[0], kernels[1])
    assert not np.allclose(kernels[1], kernels[2])
