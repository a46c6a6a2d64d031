"""The published Transformer recipes (`initialize(model, "gpt2")`, ...).

Each variable's expected distribution is computed here from the papers'
formulas and KerasHub's variable names (query, value, attention_output,
feedforward_output_dense, position_embedding, ...), independently of the
package, which reads the same roles by probing the blocks.
"""

import math

import keras
import keras_hub
import numpy as np
import pytest
from scipy import stats

from keras_weightinit import initialize, recipes

RECIPES = ("gpt2", "bert", "neox", "t-fixup", "deepnet")
WIDTH, VOCAB = 64, 256
# the std of N(0, 1) cut at +-2, as Keras's TruncatedNormal and BERT's TF code
CUT_STD = float(stats.truncnorm(-2, 2).std())


def gpt2():
    return keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCAB,
        num_layers=3,
        num_heads=4,
        hidden_dim=WIDTH,
        intermediate_dim=4 * WIDTH,
        max_sequence_length=64,
    )


def llama():
    return keras_hub.models.LlamaBackbone(
        vocabulary_size=VOCAB,
        num_layers=2,
        num_query_heads=4,
        num_key_value_heads=2,
        hidden_dim=WIDTH,
        intermediate_dim=2 * WIDTH,
    )


def bert():
    return keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB,
        num_layers=4,
        num_heads=4,
        hidden_dim=WIDTH,
        intermediate_dim=4 * WIDTH,
        max_sequence_length=64,
    )


# (builder, blocks L, causal)
MODELS = {"gpt2": (gpt2, 3, True), "llama": (llama, 2, True), "bert": (bert, 4, False)}


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    return {name: build() for name, (build, _, _) in MODELS.items()}


def kind(path: str) -> str:
    """What a KerasHub variable is, by its name."""
    name = path.split("/")
    if name[-1] in ("bias", "beta"):
        return "zero"
    if name[-1] in ("gamma", "scale"):
        return "one"
    if name[-2] == "position_embedding":
        return "position"
    if name[-1] == "embeddings":
        return "lookup"
    return {
        "query": "score",
        "key": "score",
        "value": "value",
        "attention_output": "output",
        "feedforward_output_dense": "output",
        "feedforward_intermediate_dense": "inner",
        "feedforward_gate_dense": "inner",
    }.get(name[-2], "other")


def fans(path: str, shape) -> tuple[int, int]:
    """Fans of a KerasHub kernel by its name: einsum heads are one axis."""
    if "attention_output" in path:
        return math.prod(shape[:-1]), shape[-1]
    if path.split("/")[-2] in ("query", "key", "value"):
        return shape[0], math.prod(shape[1:])
    return shape[0], shape[-1]


def expected(recipe, what, path, shape, blocks, causal):
    """`(distribution, std)` the paper gives a variable; `("const", value)`."""
    if what in ("zero", "one"):
        return "const", float(what == "one")
    d = shape[-1] if what in ("lookup", "position") else WIDTH
    fan_in, fan_out = (1, 1) if what in ("lookup", "position") else fans(path, shape)
    xavier = math.sqrt(2.0 / (fan_in + fan_out))
    branch = what in ("value", "output", "inner")  # scaled by T-Fixup, DeepNet
    if recipe == "gpt2":
        if what == "output":
            return "normal", 0.02 / math.sqrt(2 * blocks)
        return "normal", 0.01 if what == "position" else 0.02
    if recipe == "bert":
        return "cut", 0.02 * CUT_STD
    if recipe == "neox":
        if what == "output":
            return "normal", 2.0 / (blocks * math.sqrt(WIDTH))
        return "normal", math.sqrt(2.0 / (5 * WIDTH))
    if recipe == "t-fixup":
        if what == "lookup":
            return "normal", d**-0.5 * (9 * blocks) ** -0.25
        if what == "position":
            return "normal", d**-0.5
        factor = (9 * blocks) ** -0.25 if causal else 0.67 * blocks**-0.25
        return "uniform", xavier * (factor if branch else 1.0)
    # deepnet
    if what in ("lookup", "position"):
        return "normal", d**-0.5
    return "normal", xavier * ((8 * blocks) ** -0.25 if branch else 1.0)


# words each rule must hold, by recipe and kind
WORDS = {
    ("gpt2", "output"): "N(0, 0.02/sqrt(2L))",
    ("gpt2", "position"): "N(0, 0.01)",
    ("gpt2", "lookup"): "N(0, 0.02)",
    ("neox", "output"): "wang_init",
    ("neox", "inner"): "small_init",
    ("t-fixup", "value"): "^-1/4 = x",
    ("t-fixup", "score"): "XavierUniform",
    ("deepnet", "inner"): "beta = (8L)^-1/4",
    ("deepnet", "score"): "XavierNormal",
    ("bert", "score"): "TruncatedNormal(stddev=0.02)",
}


def check_variable(recipe, path, values, blocks, causal, rule):
    what = kind(path)
    dist, std = expected(recipe, what, path, values.shape, blocks, causal)
    assert rule.startswith(f"{recipe}: "), (path, rule)
    assert WORDS.get((recipe, what), "") in rule, (path, rule)
    if dist == "const":
        np.testing.assert_array_equal(values, std, err_msg=path)
        return
    n = values.size
    # a sample std's standard error is at most std / sqrt(2 n) for these draws
    tolerance = 5 * std / math.sqrt(2 * n)
    assert abs(values.std() - std) < tolerance, (path, values.std(), std)
    assert abs(values.mean()) < 5 * std / math.sqrt(n), (path, values.mean())
    top = np.abs(values).max()
    if dist == "cut":
        assert top <= 0.04 * (1 + 1e-6), (path, top)
    if dist == "uniform":
        limit = std * math.sqrt(3)
        assert top <= limit * (1 + 1e-6), (path, top, limit)
    if dist == "normal" and n >= 4096:
        assert top > 2.5 * std, (path, top, std)  # not cut


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("arch", list(MODELS))
def test_every_variable_of_a_backbone_is_drawn_as_its_paper_says(models, recipe, arch):
    model = models[arch]
    _, blocks, causal = MODELS[arch]
    report = initialize(model, recipe, seed=0)
    assert set(report.rules) == {v.path for v in model.trainable_variables}
    for variable in model.trainable_variables:
        values = keras.ops.convert_to_numpy(variable).astype("float64")
        rule = report.rules[variable.path]
        check_variable(recipe, variable.path, values, blocks, causal, rule)
    if recipe == "deepnet":
        assert report.alpha == pytest.approx((2 * blocks) ** 0.25)
    else:
        assert report.alpha is None


def test_llama_without_biases_and_with_grouped_queries_scales_values_not_keys(models):
    """GQA: the key and value kernels are (d, 2, dh); only the value is scaled."""
    report = initialize(models["llama"], "deepnet", seed=1)
    layer = "transformer_layer_0/self_attention"
    assert "beta" in report.rules[f"{layer}/value/kernel"]
    assert "beta" not in report.rules[f"{layer}/key/kernel"]
    assert "beta" not in report.rules[f"{layer}/query/kernel"]
    assert not any(path.endswith("bias") for path in report.rules)


def test_the_gpt2_recipe_differs_from_kerashubs_default_only_where_the_paper_says(
    models,
):
    """KerasHub draws every kernel N(0, 0.02); GPT-2 scales the projections."""
    model = models["gpt2"]
    initialize(model, "gpt2", seed=0)
    kernels = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
    out = kernels["transformer_layer_0/feedforward_output_dense/kernel"]
    inner = kernels["transformer_layer_0/feedforward_intermediate_dense/kernel"]
    assert out.std() < 0.5 * inner.std()


def snapshot(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.variables]


def assert_unchanged(model, before):
    for variable, value in zip(model.variables, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), value)


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_recipe_without_a_rule_for_a_weight_refuses_and_changes_nothing(recipe):
    model = keras.Sequential(
        [keras.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(2)]
    )
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"recurrent_kernel.*rules="):
        initialize(model, recipe, seed=0)
    assert_unchanged(model, before)


def test_rules_cover_what_a_recipe_cannot_place():
    model = keras.Sequential(
        [keras.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(2)]
    )
    report = initialize(
        model, "bert", seed=0, rules={"*recurrent_kernel": "orthogonal"}
    )
    recurrent = [p for p in report.rules if p.endswith("recurrent_kernel")][0]
    assert report.rules[recurrent].startswith("rules['*recurrent_kernel']")
    kernel = model.layers[-1].kernel.path
    assert report.rules[kernel].startswith("bert: TruncatedNormal")


def test_rules_apply_before_the_recipe(models):
    model = models["gpt2"]
    initialize(model, "gpt2", seed=0)
    table = model.get_layer("position_embedding").position_embeddings
    before = keras.ops.convert_to_numpy(table).copy()
    report = initialize(model, "gpt2", seed=1, rules={"position_embedding/*": "keep"})
    assert report.rules[table.path] == "rules['position_embedding/*']: kept"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(table), before)


def test_a_recipe_needs_residual_branches_and_refuses_residual(models):
    mlp = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    before = snapshot(mlp)
    with pytest.raises(ValueError, match="residual branches"):
        initialize(mlp, "gpt2")
    assert_unchanged(mlp, before)
    initialize(mlp, "bert", seed=0)  # BERT's rule needs no depth
    model = models["bert"]
    before = snapshot(model)
    with pytest.raises(ValueError, match="does not combine with `residual`"):
        initialize(model, "deepnet", residual="deepnorm")
    assert_unchanged(model, before)


def test_constants_against_the_papers_numbers():
    # GPT-2 small, 12 blocks: 0.02 / sqrt(24)
    assert recipes.gpt2_std(12) == pytest.approx(0.02 / math.sqrt(24))
    # GPT-NeoX-20B: d = 6144, 44 layers
    assert recipes.small_init_std(6144) == pytest.approx(math.sqrt(2 / 30720))
    assert recipes.wang_init_std(44, 6144) == pytest.approx(2 / 44 / math.sqrt(6144))
    # DeepNet, 18L-18L encoder-decoder (table 1)
    both = recipes.deepnet_constants(18, 18)
    assert both["encoder"][0] == pytest.approx(0.81 * (18**5) ** (1 / 16))
    assert both["decoder"][1] == pytest.approx((12 * 18) ** -0.25)
    assert recipes.deepnet_constants(decoder_layers=100)["decoder"] == pytest.approx(
        ((200) ** 0.25, 800**-0.25)
    )
    assert recipes.tfixup_scale(6, decoder=False) == pytest.approx(0.67 * 6**-0.25)
