"""Claims about the initializers, each checked against the paper's formula."""

import inspect
import json
import math
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_weightinit as kwi
from keras_weightinit import initializers

# (constructor, shape, distribution, expected std computed here from the paper)
MOMENTS = {
    "random": (lambda: kwi.RandomNormal(seed=1), (300, 400), "normal", 1.0),
    "small_random": (lambda: kwi.SmallRandomNormal(seed=1), (300, 400), "normal", 0.01),
    "xavier_avg": (
        lambda: kwi.XavierNormal(seed=1),
        (300, 500),
        "normal",
        math.sqrt(2 / 800),
    ),
    "xavier_fan_in": (
        lambda: kwi.XavierNormal(mode="fan_in", seed=1),
        (300, 500),
        "normal",
        1 / math.sqrt(300),
    ),
    "xavier_fan_out_tanh": (
        lambda: kwi.XavierNormal(gain="tanh", mode="fan_out", seed=1),
        (300, 500),
        "normal",
        5 / 3 / math.sqrt(500),
    ),
    "xavier_uniform": (
        lambda: kwi.XavierUniform(gain=2.0, seed=1),
        (300, 500),
        "uniform",
        2 * math.sqrt(2 / 800),
    ),
    "he": (lambda: kwi.HeNormal(seed=1), (400, 300), "normal", math.sqrt(2 / 400)),
    "he_conv": (
        lambda: kwi.HeNormal(seed=1),
        (3, 3, 32, 64),
        "normal",
        math.sqrt(2 / (9 * 32)),
    ),
    "he_leaky_fan_out": (
        lambda: kwi.HeNormal(negative_slope=0.2, mode="fan_out", seed=1),
        (400, 300),
        "normal",
        math.sqrt(2 / (1.04 * 300)),
    ),
    "he_uniform": (
        lambda: kwi.HeUniform(seed=1),
        (400, 300),
        "uniform",
        math.sqrt(2 / 400),
    ),
}


def _values(init, shape, dtype=None):
    return keras.ops.convert_to_numpy(init(shape, dtype=dtype)).astype(np.float64)


@pytest.mark.parametrize("name", MOMENTS)
def test_moments_and_distribution_match_the_paper(name):
    make, shape, distribution, std = MOMENTS[name]
    w = _values(make(), shape).ravel()
    n = w.size
    assert abs(w.mean()) < 5 * std / math.sqrt(n)
    assert abs(w.std() - std) < 5 * std / math.sqrt(2 * n)
    if distribution == "normal":
        reference = scipy.stats.norm(0, std)
    else:
        limit = math.sqrt(3) * std
        reference = scipy.stats.uniform(-limit, 2 * limit)
        assert np.all(np.abs(w) <= limit)
        assert np.abs(w).max() > 0.99 * limit
    assert scipy.stats.kstest(w, reference.cdf).pvalue > 1e-3


def test_he_is_the_article_formula_randn_over_sqrt_half_fan_in():
    fan_in, fan_out = 256, 128
    w = _values(kwi.HeNormal(seed=0), (fan_in, fan_out))
    article = np.random.default_rng(0).standard_normal((fan_in, fan_out)) / np.sqrt(
        fan_in / 2
    )
    assert scipy.stats.ks_2samp(w.ravel(), article.ravel()).pvalue > 1e-3


def test_he_normal_is_not_truncated():
    w = _values(kwi.HeNormal(seed=0), (1000, 1000))
    std = math.sqrt(2 / 1000)
    # a normal has ~0.27% of its mass beyond 3 std; a truncated one has none
    assert np.mean(np.abs(w) > 3 * std) == pytest.approx(0.0027, abs=0.0005)


@pytest.mark.parametrize("gain", [1.0, 0.5, "relu"])
@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (3, 3, 8, 16)])
def test_orthogonal_rows_or_columns_are_orthonormal_times_gain(shape, gain):
    w = _values(kwi.Orthogonal(gain=gain, seed=0), shape).reshape(-1, shape[-1])
    g = kwi.calculate_gain(gain) if isinstance(gain, str) else gain
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    np.testing.assert_allclose(gram, g**2 * np.eye(len(gram)), atol=1e-5)


@pytest.mark.parametrize("shape", [(700, 700), (700, 640)])
def test_a_large_orthogonal_is_orthonormal_and_haar(shape):
    # past 512 columns a near-square draw is built in halves; the law stays Haar
    rows, cols = shape
    w = _values(kwi.Orthogonal(seed=0), shape)
    np.testing.assert_allclose(w.T @ w, np.eye(cols), atol=2e-5)
    # each column of a Haar matrix is uniform on the sphere: (w + 1) / 2 of an
    # entry is Beta((rows - 1) / 2, (rows - 1) / 2); the diagonal would show a
    # missed sign fix, the second half a complement that is not re-drawn
    beta = ((rows - 1) / 2, (rows - 1) / 2)
    for sample in (np.diag(w), w[:, : cols // 2], w[:, cols // 2 :]):
        pvalue = scipy.stats.kstest((sample.ravel() + 1) / 2, "beta", args=beta).pvalue
        assert pvalue > 1e-3


@pytest.mark.parametrize("shape", [(256, 128), (4608, 64)])
def test_a_tall_draw_is_the_q_of_the_qr_with_a_positive_diagonal(shape):
    # tall draws take Q from Cholesky factors: the same Q as Householder's
    from keras_weightinit.initializers import _haar

    a = np.random.default_rng(0).normal(size=shape).astype("float32")
    q = keras.ops.convert_to_numpy(_haar(keras.ops.convert_to_tensor(a)))
    expected, r = np.linalg.qr(a.astype("float64"))
    expected *= np.where(np.diag(r) < 0, -1.0, 1.0)
    np.testing.assert_allclose(q, expected, atol=2e-6)
    np.testing.assert_allclose(q.T @ q, np.eye(shape[1]), atol=2e-6)


def test_delta_orthogonal_is_zero_except_an_orthogonal_centre():
    w = _values(kwi.DeltaOrthogonal(gain=2.0, seed=0), (3, 5, 8, 16))
    centre = w[1, 2]
    np.testing.assert_allclose(centre @ centre.T, 4.0 * np.eye(8), atol=1e-5)
    w[1, 2] = 0
    assert not np.any(w)


@pytest.mark.parametrize(
    "shape", [(8, 8), (8, 3), (3, 5), (5, 12), (3, 3, 4, 6), (3, 4, 4)]
)
def test_zero_follows_the_paper_and_is_deterministic(shape):
    w = _values(kwi.ZerO(), shape)
    np.testing.assert_array_equal(w, _values(kwi.ZerO(), shape))
    n_in, n_out = shape[-2:]
    if n_out <= n_in:
        expected = np.eye(n_in, n_out)
    else:
        m = math.ceil(math.log2(n_out))
        expected = 2 ** (-(m - 1) / 2) * scipy.linalg.hadamard(2**m)[:n_in, :n_out]
    centre = tuple(k // 2 for k in shape[:-2])
    np.testing.assert_allclose(w[centre], expected, atol=1e-7)
    w[centre] = 0
    assert not np.any(w)


def test_zero_identity_keeps_the_input():
    layer = keras.layers.Dense(16, kernel_initializer=kwi.ZerO())
    x = np.random.default_rng(0).normal(size=(4, 16)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), x, atol=1e-6)


# ----------------------------------------------------------------- seeds


def test_an_unseeded_instance_shared_by_two_layers_gives_two_kernels():
    init = kwi.HeNormal()
    model = keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(32, kernel_initializer=init),
            keras.layers.Dense(32, kernel_initializer=init),
        ]
    )
    a, b = (layer.get_weights()[0] for layer in model.layers)
    assert not np.allclose(a, b)


@pytest.mark.parametrize("cls", [kwi.HeNormal, kwi.XavierUniform, kwi.Orthogonal])
def test_an_int_seed_replays_the_whole_sequence(cls):
    first = cls(seed=7)
    sequence = [_values(first, (6, 5)) for _ in range(3)]
    assert not np.allclose(sequence[0], sequence[1])
    for copy in (cls(seed=7), first.clone(), cls.from_config(first.get_config())):
        for expected in sequence:
            np.testing.assert_array_equal(_values(copy, (6, 5)), expected)
    assert not np.allclose(_values(cls(seed=8), (6, 5)), sequence[0])


def test_a_seed_generator_advances_and_replays():
    a = kwi.HeNormal(seed=keras.random.SeedGenerator(3))
    b = kwi.HeNormal(seed=keras.random.SeedGenerator(3))
    a1, a2 = _values(a, (5, 5)), _values(a, (5, 5))
    assert not np.allclose(a1, a2)
    np.testing.assert_array_equal(_values(b, (5, 5)), a1)


def test_a_seed_generator_works_when_fit_builds_the_layer():
    # Without keras.Input, the layer is built inside fit's first traced step.
    def kernel():
        init = kwi.HeNormal(seed=keras.random.SeedGenerator(0))
        model = keras.Sequential([keras.layers.Dense(8, kernel_initializer=init)])
        model.compile("sgd", "mse")
        x = np.ones((4, 3), "float32")
        model.fit(x, np.zeros((4, 8)), epochs=1, verbose=0)
        return np.asarray(model.layers[0].kernel)

    np.testing.assert_allclose(kernel(), kernel(), atol=0.1)  # one SGD step
    assert np.std(kernel()) > 0.3  # He for fan_in 3: std 0.82


def test_set_random_seed_makes_unseeded_initializers_reproducible():
    keras.utils.set_random_seed(11)
    first = _values(kwi.XavierNormal(), (4, 4))
    keras.utils.set_random_seed(11)
    np.testing.assert_array_equal(_values(kwi.XavierNormal(), (4, 4)), first)


# --------------------------------------------------------- serialization

ALL = [
    kwi.RandomNormal(stddev=0.5, seed=1),
    kwi.SmallRandomNormal(seed=2),
    kwi.XavierNormal(gain="tanh", mode="fan_in", seed=3),
    kwi.XavierUniform(gain=1.5, seed=4),
    kwi.HeNormal(negative_slope=0.1, mode="fan_out", seed=5),
    kwi.HeUniform(seed=6),
    kwi.Orthogonal(gain="relu", seed=7),
    kwi.DeltaOrthogonal(seed=8),
    kwi.ZerO(),
]


@pytest.mark.parametrize("init", ALL, ids=lambda i: type(i).__name__)
def test_config_keys_are_the_init_arguments_and_round_trip(init):
    config = init.get_config()
    assert set(config) == set(inspect.signature(type(init)).parameters)
    serialized = keras.saving.serialize_keras_object(init)
    assert serialized["registered_name"] == f"keras_weightinit>{type(init).__name__}"
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(restored) is type(init)
    assert restored.get_config() == config
    assert init.clone().get_config() == config


@pytest.mark.parametrize(
    "gain, stored",
    [
        (keras.activations.tanh, "tanh"),
        (keras.activations.relu, "relu"),
        # Keras's function has slope 0.2, the name "leaky_relu" means 0.01.
        (keras.activations.leaky_relu, math.sqrt(2 / 1.04)),
    ],
)
def test_a_gain_function_round_trips_with_its_value(gain, stored):
    init = kwi.XavierNormal(gain=gain, seed=0)
    assert init.get_config()["gain"] == pytest.approx(stored)
    restored = kwi.XavierNormal.from_config(json.loads(json.dumps(init.get_config())))
    np.testing.assert_allclose(_values(restored, (64, 64)), _values(init, (64, 64)))


def test_seed_generator_config_round_trips():
    init = kwi.HeNormal(seed=keras.random.SeedGenerator(5))
    restored = kwi.HeNormal.from_config(json.loads(json.dumps(init.get_config())))
    assert isinstance(restored.seed, keras.random.SeedGenerator)


@pytest.mark.parametrize("name", ["HeNormal", "XavierUniform", "ZerO", "Orthogonal"])
def test_the_string_form_works_in_a_layer(name):
    layer = keras.layers.Dense(4, kernel_initializer=f"keras_weightinit>{name}")
    layer.build((None, 4))
    assert type(layer.kernel_initializer).__name__ == name


def test_a_saved_model_reloads_in_a_fresh_process(tmp_path):
    conv_inits = [kwi.DeltaOrthogonal(seed=8), kwi.HeUniform(seed=9)]
    dense_inits = [i for i in ALL if not isinstance(i, kwi.DeltaOrthogonal)]
    model = keras.Sequential(
        [keras.Input((6, 6, 4))]
        + [
            keras.layers.Conv2D(4, 3, padding="same", kernel_initializer=i)
            for i in conv_inits
        ]
        + [keras.layers.Flatten(), keras.layers.Dense(16)]
        + [keras.layers.Dense(16, kernel_initializer=i) for i in dense_inits]
    )
    path = tmp_path / "model.keras"
    model.save(path)
    np.savez(tmp_path / "weights.npz", *model.get_weights())
    (tmp_path / "configs.json").write_text(
        json.dumps([layer.get_config() for layer in model.layers])
    )
    script = textwrap.dedent(
        f"""
        import json, numpy as np, keras
        import keras_weightinit
        model = keras.saving.load_model({str(path)!r})
        saved = np.load({str(tmp_path / "weights.npz")!r})
        for i, w in enumerate(model.get_weights()):
            np.testing.assert_array_equal(w, saved[f"arr_{{i}}"])
        configs = json.loads(open({str(tmp_path / "configs.json")!r}).read())
        assert json.loads(json.dumps(
            [layer.get_config() for layer in model.layers])) == configs
        print("reloaded", len(model.layers))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"reloaded {len(model.layers)}" in result.stdout


# ------------------------------------------------------------ dtypes


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_returns_the_dtype_keras_asks_for(dtype):
    w = kwi.HeNormal(seed=0)((8, 4), dtype=dtype)
    assert keras.backend.standardize_dtype(w.dtype) == dtype


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_layers_get_float32_variables(policy):
    keras.config.set_dtype_policy(policy)
    try:
        layer = keras.layers.Dense(8, kernel_initializer=kwi.XavierNormal(seed=0))
        out = layer(np.ones((2, 4), "float32"))
        assert layer.kernel.dtype == "float32"
        assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    finally:
        keras.config.set_dtype_policy("float32")


def test_a_non_float_dtype_is_refused():
    with pytest.raises(ValueError, match="dtype=int32"):
        kwi.HeNormal()((3, 3), dtype="int32")


# ------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: kwi.RandomNormal(stddev=0), "stddev=0"),
        (lambda: kwi.SmallRandomNormal(stddev=-1.0), "stddev=-1.0"),
        (lambda: kwi.RandomNormal(stddev=float("nan")), "stddev=nan"),
        (lambda: kwi.XavierNormal(gain=-2), "gain=-2"),
        (lambda: kwi.XavierUniform(gain="swishy"), "gain='swishy'"),
        (lambda: kwi.XavierNormal(mode="fan_max"), "mode='fan_max'"),
        (lambda: kwi.HeNormal(mode="fan_avg"), "mode='fan_avg'"),
        (lambda: kwi.HeUniform(negative_slope="0.1"), "negative_slope='0.1'"),
        (lambda: kwi.HeNormal(negative_slope=True), "negative_slope=True"),
        (lambda: kwi.Orthogonal(gain=0.0), "gain=0.0"),
        (lambda: kwi.DeltaOrthogonal(gain="bogus"), "gain='bogus'"),
        (lambda: kwi.HeNormal(seed="1"), "seed='1'"),
        (lambda: kwi.HeNormal(seed=-3), "seed=-3"),
        (lambda: kwi.calculate_gain("softmaxx"), "nonlinearity='softmaxx'"),
        (lambda: kwi.calculate_gain("leaky_relu", "a"), "param='a'"),
        (lambda: kwi.calculate_gain("relu", 0.2), "param=0.2"),
    ],
)
def test_bad_arguments_fail_at_construction_naming_the_value(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make()


@pytest.mark.parametrize(
    "init, shape",
    [
        (kwi.Orthogonal(), (5,)),
        (kwi.DeltaOrthogonal(), (8, 8)),
        (kwi.DeltaOrthogonal(), (3, 3, 16, 8)),
        (kwi.ZerO(), (4,)),
        (kwi.HeNormal(), (3, 0)),
        (kwi.HeNormal(), (3, -2)),
        (kwi.XavierNormal(), (2.5, 3)),
    ],
)
def test_bad_shapes_raise_a_clear_error(init, shape):
    with pytest.raises(ValueError, match="shape"):
        init(shape)


CONSTRUCTORS = {
    "RandomNormal": (kwi.RandomNormal, {"stddev": st.floats(-2, 5)}),
    "XavierNormal": (
        kwi.XavierNormal,
        {
            "gain": st.one_of(st.floats(-1, 3), st.sampled_from(["relu", "x"])),
            "mode": st.sampled_from(["fan_in", "fan_out", "fan_avg", "bad"]),
        },
    ),
    "HeUniform": (
        kwi.HeUniform,
        {
            "negative_slope": st.one_of(st.floats(allow_nan=True), st.text(max_size=2)),
            "mode": st.sampled_from(["fan_in", "fan_out", "fan_avg"]),
        },
    ),
    "Orthogonal": (kwi.Orthogonal, {"gain": st.floats(-1, 3)}),
    "DeltaOrthogonal": (kwi.DeltaOrthogonal, {"gain": st.floats(-1, 3)}),
    "ZerO": (kwi.ZerO, {}),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    name=st.sampled_from(sorted(CONSTRUCTORS)),
    shape=st.lists(st.integers(-1, 6), min_size=0, max_size=5),
    seed=st.one_of(st.none(), st.integers(-2, 2**32)),
)
def test_random_arguments_and_shapes_only_raise_documented_errors(
    data, name, shape, seed
):
    cls, strategies = CONSTRUCTORS[name]
    kwargs = {k: data.draw(s) for k, s in strategies.items()}
    if name != "ZerO":
        kwargs["seed"] = seed
    try:
        init = cls(**kwargs)
    except ValueError as error:
        assert "Received" in str(error)
        return
    try:
        w = keras.ops.convert_to_numpy(init(tuple(shape)))
    except ValueError as error:
        assert "shape" in str(error)
        return
    assert w.shape == tuple(shape)
    assert np.all(np.isfinite(w))


# ------------------------------------------------------------- schemes


def test_get_scheme_returns_fresh_instances_of_the_documented_schemes():
    expected = {
        "zeros": keras.initializers.Zeros,
        "random": kwi.RandomNormal,
        "small_random": kwi.SmallRandomNormal,
        "xavier": kwi.XavierNormal,
        "glorot": kwi.XavierNormal,
        "he": kwi.HeNormal,
        "lecun": kwi.XavierNormal,
        "orthogonal": kwi.Orthogonal,
        "zero": kwi.ZerO,
    }
    assert kwi.scheme_names() == list(expected)
    for name, cls in expected.items():
        init = kwi.get_scheme(name)
        assert type(init) is cls
        assert kwi.get_scheme(name) is not init
    assert kwi.get_scheme("xavier").mode == "fan_in"
    assert kwi.get_scheme("glorot").mode == "fan_avg"
    assert kwi.get_scheme("random").stddev == 1.0
    assert kwi.get_scheme("small_random").stddev == 0.01
    np.testing.assert_array_equal(
        _values(kwi.get_scheme("he", seed=4), (3, 3)),
        _values(kwi.get_scheme("he", seed=4), (3, 3)),
    )


def test_get_scheme_rejects_unknown_names_listing_the_known_ones():
    with pytest.raises(ValueError, match="Known schemes: zeros, random, small_random"):
        kwi.get_scheme("kaiming")


def test_public_names_are_exported():
    assert set(kwi.__all__) <= set(dir(kwi))
    assert kwi.__version__


def test_a_gain_given_as_a_keras_activation_serializes_by_name():
    init = kwi.XavierNormal(gain=keras.activations.tanh, seed=0)
    assert init.get_config()["gain"] == "tanh"
    restored = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(init)))
    )
    np.testing.assert_array_equal(
        _values(restored, (4, 4)), _values(init.clone(), (4, 4))
    )


# --------------------------------------------------------------------------
# seeds: no symmetry through copies


def _mha_kernels(init):
    x = keras.Input((5, 8))
    mha = keras.layers.MultiHeadAttention(2, 4, kernel_initializer=init)
    keras.Model(x, mha(x, x))
    return [
        np.asarray(layer.kernel)
        for layer in (mha.query_dense, mha.key_dense, mha.value_dense)
    ]


@pytest.mark.parametrize(
    "make", [kwi.HeNormal, kwi.XavierUniform, kwi.Orthogonal, kwi.RandomNormal]
)
def test_an_int_seeded_multi_head_attention_gets_three_different_projections(make):
    query, key, value = _mha_kernels(make(seed=1))
    assert not np.allclose(query, key)
    assert not np.allclose(key, value)
    assert not np.allclose(query, value)
    # the same code with the same seed: the same weights
    for a, b in zip(_mha_kernels(make(seed=1)), (query, key, value), strict=True):
        np.testing.assert_array_equal(a, b)
    # Keras's own initializers replay the seed in every copy: the symmetry
    keras_query, keras_key, _ = _mha_kernels(keras.initializers.HeNormal(seed=1))
    np.testing.assert_array_equal(keras_query, keras_key)


def _shared_models():
    shared = kwi.HeNormal(seed=4)
    sequential = keras.Sequential(
        [
            keras.Input((8,)),
            *[keras.layers.Dense(8, kernel_initializer=shared) for _ in range(3)],
        ]
    )
    inp = keras.Input((8,))
    h = inp
    for _ in range(3):
        h = keras.layers.Dense(8, kernel_initializer=kwi.HeNormal(seed=5))(h)
    return sequential, keras.Model(inp, h)


def _kernels(model):
    return [
        np.asarray(layer.kernel) for layer in model.layers if hasattr(layer, "kernel")
    ]


@pytest.mark.parametrize("how", ["clone_model", "model_from_json"])
def test_copies_of_one_instance_give_every_layer_its_own_kernel(how):
    for model in _shared_models():
        if how == "clone_model":
            copies = [keras.models.clone_model(model) for _ in range(2)]
        else:
            copies = [keras.models.model_from_json(model.to_json()) for _ in range(2)]
        kernels = _kernels(copies[0])
        for i in range(len(kernels)):
            for j in range(i + 1, len(kernels)):
                assert not np.allclose(kernels[i], kernels[j]), (how, i, j)
        # two copies of the same model, layer names kept: the same weights
        for a, b in zip(kernels, _kernels(copies[1]), strict=True):
            np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# on the device: traced draws


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="draws inside tf.function: on another backend they are its arrays",
)
@pytest.mark.parametrize("make", [kwi.HeNormal, kwi.XavierUniform, kwi.Orthogonal])
def test_a_traced_draw_is_a_few_ops_not_a_constant_of_the_kernel(make):
    import tensorflow as tf

    init = make()

    def draw():
        return init((2048, 2048))

    graph = tf.function(draw, autograph=False).get_concrete_function().graph
    assert len(graph.as_graph_def().SerializeToString()) < 100_000  # 16 MB of values


def test_an_unseeded_traced_draw_is_fresh_on_every_run_and_a_seeded_one_replays():
    import tensorflow as tf

    unseeded, seeded = kwi.HeNormal(), kwi.HeNormal(seed=3)
    fresh = tf.function(lambda: unseeded((4, 4)), autograph=False)
    fixed = tf.function(lambda: seeded((4, 4)), autograph=False)
    assert not np.allclose(fresh().numpy(), fresh().numpy())
    np.testing.assert_array_equal(fixed().numpy(), fixed().numpy())
    keras.utils.set_random_seed(5)
    first = kwi.HeNormal()((4, 4)).numpy()
    keras.utils.set_random_seed(5)
    np.testing.assert_array_equal(first, kwi.HeNormal()((4, 4)).numpy())


def test_given_fans_replace_the_shapes_and_any_initializer_draws_with_them():
    shape = (3, 3, 8, 1)  # a depthwise kernel: the shape's fans are (72, 9)
    given = np.asarray(kwi.HeNormal(seed=0)(shape, "float32", fans=(9, 9)))
    read = np.asarray(kwi.HeNormal(seed=0)(shape, "float32"))
    np.testing.assert_allclose(given, read * np.sqrt(72 / 9), rtol=1e-5)
    drawn = initializers.draw_with_fans(kwi.HeNormal(seed=0), shape, "float32", (9, 9))
    np.testing.assert_array_equal(np.asarray(drawn), given)
    keras_he = keras.initializers.HeNormal(seed=0)
    scaled = initializers.draw_with_fans(keras_he, shape, "float32", (9, 9))
    assert float(np.std(np.asarray(scaled))) > 2 * float(np.std(np.asarray(read)))
    with pytest.raises(ValueError, match=r"Received: fans=\(9, 9, 9\)"):
        kwi.HeNormal()(shape, fans=(9, 9, 9))
