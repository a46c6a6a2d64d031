"""Residual-depth recipes (`initialize(residual=...)`) and the symmetry check."""

import math

import keras
import numpy as np
import pytest
import zoo

import keras_weightinit as kwi
from keras_weightinit import graph
from keras_weightinit.compare import build_resmlp

BLOCKS, WIDTH = 32, 64


@pytest.fixture(scope="module")
def data(digits):
    x, y = digits
    return x[:256], y[:256]


def resmlp():
    keras.utils.set_random_seed(0)
    return build_resmlp(64, 10, BLOCKS, WIDTH, "relu")


def std_ratio(model, x):
    """Std of the last residual sum over the stem's."""
    stem = keras.Model(model.inputs, model.get_layer("stem").output)
    last = keras.Model(model.inputs, model.get_layer(f"block{BLOCKS - 1}_add").output)
    return float(np.std(keras.ops.convert_to_numpy(last(x)))) / float(
        np.std(keras.ops.convert_to_numpy(stem(x)))
    )


def kernel(model, name):
    return keras.ops.convert_to_numpy(model.get_layer(name).kernel)


@pytest.fixture(scope="module")
def recipes(data):
    x, y = data
    found = {}
    for recipe in (None, "zero", "fixup", "scaled"):
        model = resmlp()
        report = kwi.initialize(model, "auto", seed=0, residual=recipe)
        found[recipe] = (model, report, kwi.diagnose(model, x, y))
    return found


def test_the_plain_residual_mlp_explodes_and_every_recipe_keeps_it_steady(
    recipes, data
):
    x, _ = data
    model, _, diagnosis = recipes[None]
    assert std_ratio(model, x) > 1e3
    assert diagnosis.verdict == "exploding"
    for recipe in ("zero", "fixup", "scaled"):
        model, _, diagnosis = recipes[recipe]
        assert std_ratio(model, x) < 10, recipe
        assert diagnosis.verdict == "healthy", (recipe, str(diagnosis))


def test_each_recipe_puts_the_papers_values_in_the_weights(recipes):
    plain = recipes[None][0]
    zero, fixup, scaled = (recipes[r][0] for r in ("zero", "fixup", "scaled"))
    for i in range(BLOCKS):
        a, b = f"block{i}_a", f"block{i}_b"
        assert not np.any(kernel(zero, b)), b
        assert np.any(kernel(zero, a))
        # Fixup: m = 2 layers per branch, L = 32 branches: L^(-1/(2m-2))
        np.testing.assert_allclose(
            kernel(fixup, a), kernel(plain, a) * BLOCKS ** (-1 / 2), rtol=1e-6
        )
        assert not np.any(kernel(fixup, b))
        np.testing.assert_allclose(
            kernel(scaled, b), kernel(plain, b) / math.sqrt(BLOCKS), rtol=1e-6
        )
        np.testing.assert_array_equal(kernel(scaled, a), kernel(plain, a))
    assert not np.any(kernel(fixup, "output"))  # Fixup's zero classifier
    assert np.any(kernel(zero, "output"))
    rules = recipes["fixup"][1].rules
    assert (
        "fixup: x L^(-1/(2m-2)) = 0.1768"
        in rules[plain.get_layer("block0_a").kernel.path]
    )
    assert rules[plain.get_layer("output").kernel.path].endswith(
        "fixup: the classifier"
    )


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["zero", "fixup"])
def test_zero_and_fixup_train_the_deep_residual_mlp(recipe, digits):
    x, y = digits
    model = resmlp()
    kwi.initialize(model, "auto", seed=0, residual=recipe)
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        x[:1200],
        y[:1200],
        validation_data=(x[1200:], y[1200:]),
        epochs=15,
        batch_size=32,
        verbose=0,
    )
    assert max(history.history["val_accuracy"]) > 0.9


def test_zero_init_sets_the_last_normalization_gamma_where_a_branch_has_one():
    x = keras.Input((8,))
    h = keras.layers.Dense(8)(x)
    branch = keras.layers.Dense(8, activation="relu")(h)
    branch = keras.layers.Dense(8)(branch)
    norm = keras.layers.BatchNormalization()
    out = keras.layers.Add()([h, norm(branch)])
    model = keras.Model(x, keras.layers.Dense(2)(out))
    report = kwi.initialize(model, "he", seed=0, residual="zero")
    assert not np.any(keras.ops.convert_to_numpy(norm.gamma))
    assert np.any(keras.ops.convert_to_numpy(model.layers[3].kernel))
    assert "last normalization" in report.rules[norm.gamma.path]


def test_a_transformer_block_is_recognised_and_deepnorm_scales_v_and_o():
    model, _, _ = zoo.transformer()
    blocks = graph.residual_blocks(model)
    assert len(blocks) == 2
    mha = next(
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.MultiHeadAttention)
    )
    assert mha in blocks[0].branch
    plain_report = kwi.initialize(model, "auto", seed=0)
    plain = {
        p: keras.ops.convert_to_numpy(v)
        for p, v in ((w.path, w.variable) for w in graph.kernel_weights(model))
    }
    report = kwi.initialize(model, "auto", seed=0, residual="deepnorm")
    beta = (4 * 2) ** -0.25
    assert report.alpha == pytest.approx(2**0.25)
    projections = graph.attention_projections(mha)
    for name, factor in (("query", 1), ("key", 1), ("value", beta), ("output", beta)):
        path = projections[name].kernel.path
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(projections[name].kernel),
            plain[path] * factor,
            rtol=1e-6,
        )
    assert set(plain_report) == set(report)
    zero = kwi.initialize(model, "auto", seed=0, residual="zero")
    assert not np.any(keras.ops.convert_to_numpy(projections["output"].kernel))
    assert (
        "last kernel of a residual branch"
        in zero.rules[projections["output"].kernel.path]
    )


def test_bad_residual_arguments_change_nothing():
    model = resmlp()
    before = [keras.ops.convert_to_numpy(v) for v in model.weights]
    with pytest.raises(ValueError, match="Received: residual='skip'"):
        kwi.initialize(model, residual="skip")
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="none was found"):
        kwi.initialize(plain, residual="zero")
    one = keras.Input((4,))
    single = keras.Model(one, keras.layers.Add()([one, keras.layers.Dense(4)(one)]))
    with pytest.raises(ValueError, match="at least two kernel layers"):
        kwi.initialize(single, residual="fixup")
    for a, b in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(b))


# --------------------------------------------------------------------------
# symmetry


def test_all_zero_weights_are_symmetric(digits):
    x, y = digits
    model = keras.Sequential(
        [keras.Input((64,))]
        + [
            keras.layers.Dense(16, activation="relu", kernel_initializer="zeros")
            for _ in range(3)
        ]
        + [keras.layers.Dense(10, activation="softmax", kernel_initializer="zeros")]
    )
    report = kwi.diagnose(model, x[:64], y[:64])
    assert report.verdict == "symmetric"
    assert "can never become different" in str(report)
    # constant weights everywhere: the same story; a random layer above a
    # constant one makes its units differ after one step, so that is not
    constant = [
        keras.layers.Dense(16, activation="relu", kernel_initializer="ones"),
        keras.layers.Dense(16, activation="relu", kernel_initializer="ones"),
    ]
    head = keras.layers.Dense(10, activation="softmax", kernel_initializer="ones")
    model = keras.Sequential([keras.Input((64,)), *constant, head])
    assert kwi.diagnose(model, x[:64], y[:64]).verdict == "symmetric"
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(16, activation="relu", kernel_initializer="ones"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    assert kwi.diagnose(model, x[:64], y[:64]).verdict != "symmetric"


def test_identical_finds_a_shared_unseeded_keras_instance_and_int_seeded_mha(digits):
    x, y = digits
    shared = keras.initializers.GlorotUniform()  # the same values on every call
    model = keras.Sequential(
        [keras.Input((64,))]
        + [
            keras.layers.Dense(64, activation="relu", kernel_initializer=shared)
            for _ in range(2)
        ]
        + [keras.layers.Dense(10, activation="softmax")]
    )
    report = kwi.diagnose(model, x[:64], y[:64])
    assert report.identical == [[layer.kernel.path for layer in model.layers[:2]]]
    assert "identical values" in str(report)

    tokens = keras.Input((5, 8))
    mha = keras.layers.MultiHeadAttention(
        2, 4, kernel_initializer=keras.initializers.GlorotUniform(seed=1)
    )
    attention = keras.Model(tokens, mha(tokens, tokens))
    report = kwi.diagnose(attention, np.ones((2, 5, 8), "float32"))
    projections = graph.attention_projections(mha)
    group = sorted(projections[n].kernel.path for n in ("query", "key", "value"))
    assert [sorted(g) for g in report.identical] == [group]
    ours = keras.layers.MultiHeadAttention(
        2, 4, kernel_initializer=kwi.HeNormal(seed=1)
    )
    seeded = keras.Model(tokens, ours(tokens, tokens))
    assert kwi.diagnose(seeded, np.ones((2, 5, 8), "float32")).identical == []


@pytest.mark.slow
def test_compare_trains_the_residual_mlp_under_each_recipe(tmp_path):
    from keras_weightinit.compare import CompareConfig, compare

    config = CompareConfig(
        schemes=("he", "he+zero", "he+fixup"),
        model="resmlp",
        depth=3,
        width=16,
        epochs=1,
        seeds=1,
        max_train=128,
        logdir=str(tmp_path),
        verbose=0,
    )
    summary = compare(config)
    assert [s["scheme"] for s in summary["schemes"]] == ["he", "he+zero", "he+fixup"]
    assert (tmp_path / "he_zero" / "seed0" / "gradients").is_dir()
    for bad, match in (
        (dict(model="mlp", schemes=("he+zero",)), "need model='resmlp'"),
        (dict(model="resmlp", schemes=("he+skip",)), "residual recipe 'skip'"),
        (dict(model="resnet"), "Received: model='resnet'"),
    ):
        with pytest.raises(ValueError, match=match):
            compare(CompareConfig(**{"logdir": str(tmp_path / "bad"), **bad}))
    assert not (tmp_path / "bad").exists()
