"""Every tool on the models Keras users train today: KerasHub, dicts, custom weights.

Tiny configs built from scratch (no preset, no download). The claims hold by
what each weight does in its layer, so they are checked on families of
models, not on a list of names.
"""

import math
import subprocess
import sys

import keras
import keras_hub  # a dev extra: the tests need it, the package does not
import numpy as np
import pytest

import keras_weightinit as kw
from keras_weightinit import graph, structure

VOCAB = 97
_TEXT = dict(vocabulary_size=VOCAB, num_layers=2, hidden_dim=32, intermediate_dim=64)


def gpt2():
    return keras_hub.models.GPT2Backbone(
        num_heads=2, max_sequence_length=32, dropout=0.0, **_TEXT
    )


def bert():
    return keras_hub.models.BertBackbone(
        num_heads=2, max_sequence_length=32, dropout=0.0, **_TEXT
    )


def llama():
    return keras_hub.models.LlamaBackbone(
        num_query_heads=4, num_key_value_heads=2, **_TEXT
    )


def gemma():
    return keras_hub.models.GemmaBackbone(
        num_query_heads=2, num_key_value_heads=1, head_dim=16, **_TEXT
    )


def vit():
    return keras_hub.models.ViTBackbone(
        image_shape=(16, 16, 3),
        patch_size=4,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        mlp_dim=64,
    )


BACKBONES = {"gpt2": gpt2, "bert": bert, "llama": llama, "gemma": gemma, "vit": vit}
CAUSAL_LM = {
    "gpt2": lambda: keras_hub.models.GPT2CausalLM(backbone=gpt2(), preprocessor=None),
    "llama": lambda: keras_hub.models.LlamaCausalLM(
        backbone=llama(), preprocessor=None
    ),
    "gemma": lambda: keras_hub.models.GemmaCausalLM(
        backbone=gemma(), preprocessor=None
    ),
}
TASKS = {
    **CAUSAL_LM,
    "bert_classifier": lambda: keras_hub.models.BertTextClassifier(
        backbone=bert(), num_classes=5, preprocessor=None
    ),
    "vit_classifier": lambda: keras_hub.models.ViTImageClassifier(
        backbone=vit(), num_classes=5, preprocessor=None
    ),
}


def text(batch=4, length=12, segments=False, seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "token_ids": rng.integers(0, VOCAB, (batch, length)).astype("int32"),
        "padding_mask": np.ones((batch, length), "int32"),
    }
    if segments:
        x["segment_ids"] = np.zeros((batch, length), "int32")
    return x


def inputs_for(model, batch=4):
    if any(i.name == "images" for i in model.inputs):
        return (
            np.random.default_rng(0)
            .standard_normal((batch, 16, 16, 3))
            .astype("float32")
        )
    names = {i.name for i in model.inputs}
    return text(batch, segments="segment_ids" in names)


def values(model):
    return {v.path: np.array(v) for v in model.trainable_variables}


@pytest.mark.parametrize("name", sorted({**BACKBONES, **TASKS}))
def test_auto_redraws_random_weights_keeps_constants_and_reports_every_variable(name):
    model = {**BACKBONES, **TASKS}[name]()
    found = {w.path: w for w in graph.weights(model)}
    before = values(model)
    report = kw.initialize(model, "auto", seed=0)
    after = values(model)
    assert set(report.rules) == set(before)  # every trainable variable has a rule
    drawn = [p for p, w in found.items() if w.kernel_like]
    for path, weight in found.items():
        if weight.kernel_like:
            assert not np.array_equal(before[path], after[path]), path
        elif weight.initial is not None:  # a constant at build keeps it
            np.testing.assert_array_equal(before[path], after[path], err_msg=path)
    flat = [after[p].ravel() for p in drawn]
    for i in range(len(flat)):
        for j in range(i):
            if flat[i].shape == flat[j].shape:
                assert not np.array_equal(flat[i], flat[j]), (drawn[i], drawn[j])
    again = {**BACKBONES, **TASKS}[name]()
    kw.initialize(again, "auto", seed=0)
    for path, value in values(again).items():
        np.testing.assert_array_equal(value, after[path], err_msg=path)


def test_gemma_zero_scale_and_convnext_layer_scale_stay_as_their_layers_build_them():
    model = gemma()
    report = kw.initialize(model, "auto", seed=0)
    scales = [v for v in model.trainable_variables if v.path.endswith("/scale")]
    assert scales and all(not np.any(np.array(v)) for v in scales)
    assert all("its layer's constant at build" in report.rules[v.path] for v in scales)

    class LayerScale(keras.layers.Layer):
        def build(self, shape):
            self.gamma = self.add_weight(
                shape=(shape[-1],), initializer=keras.initializers.Constant(1e-6)
            )

        def call(self, x):
            return x * self.gamma

    x = keras.Input((8,))
    branch = LayerScale()(keras.layers.Dense(8)(keras.layers.Dense(8, "relu")(x)))
    model = keras.Model(x, keras.layers.Dense(3)(keras.layers.Add()([x, branch])))
    report = kw.initialize(model, "auto", seed=0)
    gain = model.layers[3].gamma
    np.testing.assert_allclose(np.array(gain), 1e-6)
    assert report.rules[gain.path].startswith("kept: 1e-06")


@pytest.mark.parametrize("name", sorted(CAUSAL_LM))
def test_a_language_model_after_auto_predicts_near_uniformly(name):
    model = CAUSAL_LM[name]()
    report = kw.initialize(model, "auto", seed=0)
    x = text(batch=8, length=16, seed=1)
    y = np.random.default_rng(2).integers(0, VOCAB, (8, 16))
    logits = model(x)
    loss = float(np.mean(keras.losses.sparse_categorical_crossentropy(y, logits, True)))
    assert abs(loss - math.log(VOCAB)) < 0.1 * math.log(VOCAB)
    readout = [p for p, rule in report.rules.items() if "(readout" in rule]
    assert len(readout) == 1


def test_a_tied_embedding_is_one_variable_drawn_by_the_readout_rule():
    model = CAUSAL_LM["gpt2"]()
    found = graph.weights(model)
    (head,) = structure.readouts(model, found)
    table = model.backbone.token_embedding.embeddings
    assert head.variable is table  # the input table is the readout, transposed
    report = kw.initialize(model, "auto", seed=0)
    assert "(readout, tied table)" in report.rules[table.path]
    d = table.shape[-1]
    expected = math.sqrt(0.1 * math.log(VOCAB) / d)
    tolerance = 4 / math.sqrt(2 * np.size(table))
    assert np.std(np.array(table)) == pytest.approx(expected, rel=tolerance)
    untied = CAUSAL_LM["llama"]()
    (head,) = structure.readouts(untied, graph.weights(untied))
    assert head.variable is untied.backbone.token_embedding.reverse_embeddings


@pytest.mark.parametrize("name", ["llama", "gemma", "gpt2"])
def test_residual_zero_makes_every_pre_norm_block_the_identity(name):
    model = BACKBONES[name]()
    kw.initialize(model, "auto", seed=0, residual="zero")
    x = text(batch=2, length=8)
    out = np.array(model(x))
    stream = model.token_embedding(x["token_ids"])
    if name == "gemma":  # Gemma scales its embeddings by sqrt(d)
        stream = stream * math.sqrt(model.hidden_dim)
    if name == "gpt2":
        stream = stream + model.position_embedding(stream)
    final = model.layers[-1]
    np.testing.assert_allclose(out, np.array(final(stream)), atol=1e-5)


def test_residual_branches_inside_blocks_are_found_by_probing_not_by_name():
    class Block(keras.layers.Layer):  # a block the package has never seen
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.norm = keras.layers.LayerNormalization()
            self.up = keras.layers.Dense(16, activation="relu")
            self.down = keras.layers.Dense(8)

        def build(self, shape):
            for layer, s in ((self.norm, shape), (self.up, shape)):
                layer.build(s)
            self.down.build((*shape[:-1], 16))

        def call(self, x):
            return x + self.down(self.up(self.norm(x)))

    inputs = keras.Input((5, 8))
    model = keras.Model(inputs, Block()(Block()(inputs)))
    found = graph.weights(model)
    blocks = structure.inner_blocks(model, found)
    assert len(blocks) == 2
    for block in blocks:
        (branch,) = block.branches
        assert branch.last.variable is block.layer.down.kernel
    kw.initialize(model, "auto", seed=0, residual="zero")
    x = np.random.default_rng(0).standard_normal((3, 5, 8)).astype("float32")
    np.testing.assert_allclose(np.array(model(x)), x, atol=1e-6)


@pytest.mark.parametrize("name", ["gpt2", "llama", "bert", "vit"])
def test_lsuv_and_diagnose_run_on_a_backbones_inputs(name):
    model = BACKBONES[name]()
    x = inputs_for(model, batch=4)
    report = kw.diagnose(model, x)
    assert report.verdict == "healthy", report.reasons
    names = [row["name"] for row in report.rows]
    assert any("attention_output" in n for n in names)
    lsuv = kw.lsuv(model, x, seed=0)
    assert lsuv.not_converged == [] and lsuv.skipped == {}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_diagnose_says_healthy_at_keras_hubs_default_and_after_auto(name):
    model = TASKS[name]()
    x = inputs_for(model, batch=4)
    labels = 5 if "classifier" in name else VOCAB
    y = np.random.default_rng(0).integers(0, labels, (4, 12) if labels == VOCAB else 4)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert kw.diagnose(model, x, y, loss=loss).verdict == "healthy"
    kw.initialize(model, "auto", seed=0)
    report = kw.diagnose(model, x, y, loss=loss)
    assert report.verdict == "healthy", report.reasons


def test_convnext_tiny_is_not_vanishing_at_keras_default_and_keeps_its_layer_scale():
    keras.utils.set_random_seed(0)
    model = keras.applications.ConvNeXtTiny(
        weights=None, input_shape=(32, 32, 3), classes=10
    )
    x = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype("float32")
    report = kw.diagnose(model, 50 * x, np.arange(4))
    assert report.verdict == "healthy", report.reasons
    scales = [v for v in model.trainable_variables if "layer_scale" in v.path]
    kw.initialize(model, "auto", seed=0)
    assert all(np.allclose(np.array(v), 1e-6) for v in scales)


def two_input_model():
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    h = keras.layers.Concatenate()(
        [keras.layers.Dense(8, activation="relu")(a), keras.layers.Dense(8)(b)]
    )
    model = keras.Model({"a": a, "b": b}, keras.layers.Dense(5)(h))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def two_inputs(n=32):
    rng = np.random.default_rng(0)
    return {
        "a": rng.standard_normal((n, 4)).astype("float32"),
        "b": rng.standard_normal((n, 3)).astype("float32"),
    }, rng.integers(0, 5, n)


def test_every_tool_takes_dict_inputs_and_tf_data_of_them(tmp_path):
    import tensorflow as tf

    model = two_input_model()
    x, y = two_inputs()
    assert kw.lsuv(model, x, seed=0).not_converged == []
    assert kw.diagnose(model, x, y).verdict in ("healthy", "vanishing", "exploding")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    assert kw.diagnose(model, dataset).loss is not None
    kw.lsuv(model, dataset, seed=0)
    callbacks = [
        kw.LSUVInit(x, seed=0),
        kw.GradientHistograms(str(tmp_path), data=(x, y)),
    ]
    model.fit(x, y, epochs=1, verbose=0, callbacks=callbacks)
    assert (tmp_path / "gradients").is_dir()


def test_a_list_of_two_arrays_feeds_a_two_input_model():
    a, b = keras.Input((4,)), keras.Input((3,))
    out = keras.layers.Dense(2)(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], out)
    x, y = two_inputs()
    report = kw.lsuv(model, [x["a"], x["b"]], seed=0)
    assert report.not_converged == []
    assert kw.diagnose(model, [x["a"], x["b"]]).rows


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda x: {"a": x["a"]}, r"keys"),
        (lambda x: {**x, "b": x["b"][:, :2]}, r"`x\['b'\]` does not fit"),
        (lambda x: {**x, "b": x["b"][:10]}, r"same number of samples"),
        (lambda x: {**x, "b": np.full((32, 3), np.nan)}, r"`x\['b'\]` contains"),
        (lambda x: {**x, "b": np.array(["s"] * 32)}, r"`x\['b'\]` must hold numbers"),
    ],
)
def test_a_bad_leaf_is_named_and_nothing_changes(bad, message):
    model = two_input_model()
    x, y = two_inputs()
    before = values(model)
    for tool in (lambda d: kw.lsuv(model, d), lambda d: kw.diagnose(model, d, y)):
        with pytest.raises(ValueError, match=message):
            tool(bad(x))
    for path, value in values(model).items():
        np.testing.assert_array_equal(value, before[path])


def test_an_rbm_says_it_needs_one_array():
    x, _ = two_inputs()
    with pytest.raises(ValueError, match="one array.*visible layer"):
        kw.RBM(4).fit(x)


def test_gradient_histograms_log_every_attention_and_feed_forward_kernel(
    tmp_path, events
):
    model = CAUSAL_LM["gpt2"]()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = text(batch=4, length=8)
    y = np.random.default_rng(3).integers(0, VOCAB, (4, 8))
    callback = kw.GradientHistograms(str(tmp_path), data=(x, y))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    tags = [t for t in events(tmp_path / "gradients").tags if "gradient_norm/" in t]
    for layer in range(2):
        for kernel in ("query", "key", "value", "attention_output"):
            assert any(
                f"transformer_layer_{layer}/self_attention/{kernel}" in t for t in tags
            ), kernel
        for dense in ("feedforward_intermediate_dense", "feedforward_output_dense"):
            assert any(f"transformer_layer_{layer}/{dense}" in t for t in tags)


def test_rules_come_first_and_a_pattern_matching_nothing_is_refused():
    model = llama()
    report = kw.initialize(
        model, "auto", seed=0, rules={"*feedforward_output_dense*": "zeros"}
    )
    outputs = [v for v in model.trainable_variables if "feedforward_output" in v.path]
    assert all(not np.any(np.array(v)) for v in outputs)
    assert all(report.rules[v.path].startswith("rules[") for v in outputs)
    before = values(model)
    with pytest.raises(ValueError, match="matches no variable"):
        kw.initialize(model, "auto", rules={"no_such_layer/*": "keep"})
    with pytest.raises(ValueError, match=r"rules\['\*'\]"):
        kw.initialize(model, "auto", rules={"*": "not_a_scheme"})
    for path, value in values(model).items():
        np.testing.assert_array_equal(value, before[path])


def test_experts_are_drawn_one_by_one_with_an_experts_fans():
    class Experts(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(4, shape[-1], 64), name="experts_kernel")

        def call(self, x):
            return keras.ops.einsum("bi,eio->beo", x, self.w)

    model = keras.Sequential([keras.Input((32,)), Experts()])
    (weight,) = graph.weights(model)
    assert (weight.experts, weight.fan_in, weight.fan_out) == (4, 32, 64)
    kw.initialize(model, "orthogonal", seed=0)
    value = np.array(model.layers[0].w)
    for expert in value:  # each (32, 64) slice semi-orthogonal on its own
        np.testing.assert_allclose(expert @ expert.T, np.eye(32), atol=1e-5)
    assert not np.allclose(value[0], value[1])


def test_the_package_never_imports_keras_hub_itself():
    code = (
        "import sys, numpy as np, keras, keras_weightinit as kw\n"
        "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])\n"
        "kw.initialize(m, 'auto', seed=0)\n"
        "kw.diagnose(m, np.ones((8, 4), 'float32'))\n"
        "print('keras_hub' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_lsuv_takes_rules_a_kept_weight_is_neither_drawn_nor_scaled(scaled_layer):
    Scaled = scaled_layer
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, name="first"),
            Scaled(name="scaled"),
            keras.layers.Dense(3, name="head"),
        ]
    )
    x = np.random.default_rng(0).standard_normal((64, 4)).astype("float32")
    with pytest.raises(ValueError, match=r"scaled/w \(in a Scaled\).*rules="):
        kw.lsuv(model, x)
    head = model.get_layer("head").kernel
    kept = {p: np.array(v) for p, v in values(model).items() if "scaled" in p}
    before_head = np.array(head)
    report = kw.lsuv(model, x, seed=0, rules={"*scaled/*": "keep", "*head/*": "keep"})
    assert set(report) == {"first"}
    assert report.skipped == {"head": "rules['*head/*']: kept"}
    np.testing.assert_array_equal(np.array(head), before_head)
    for path, value in values(model).items():
        if path in kept:
            np.testing.assert_array_equal(value, kept[path])
