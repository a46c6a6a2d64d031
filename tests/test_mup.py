"""Tests of `keras_weightinit.mup`.

The table, the records, the optimizers, on every backend (the coordinate
check itself: `test_transfer.py`).
"""

import warnings

import keras
import numpy as np
import pytest

from keras_weightinit import mup
from keras_weightinit.transfer import (
    digits,
)


def _logits_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _mlp(width, readout=mup.MuReadout):
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(width, activation="relu"),
            readout(10),
        ]
    )


def _expected(width, base, family, mu_readout=True):
    """The µP table for the MLP, written out by hand: (kernel, bias) per layer."""
    m = width / base
    if family == "adam":
        hidden, inputs = 1 / m, 1.0
        readout = 1.0 if mu_readout else 1 / m
    else:
        hidden, inputs = 1.0, m
        readout = m if mu_readout else 1 / m
    return [inputs, inputs, hidden, inputs, readout, 1.0]


@pytest.mark.parametrize("family", ["adam", "sgd"])
@pytest.mark.parametrize("readout", [mup.MuReadout, keras.layers.Dense])
def test_learning_rate_multipliers_equal_the_table(family, readout):
    model = mup.set_base_shapes(_mlp(128, readout), _mlp(32, readout), seed=0)
    table = mup.mup_multipliers(model, family)
    expected = _expected(128, 32, family, readout is mup.MuReadout)
    assert [row["lr_mult"] for row in table.values()] == pytest.approx(expected)
    optimizer = (mup.MuAdam if family == "adam" else mup.MuSGD)(0.01)
    optimizer.build(model.trainable_variables)
    assert optimizer.mup_multipliers == pytest.approx(expected)


def test_initialization_follows_the_table():
    model = mup.set_base_shapes(_mlp(1024), _mlp(64), seed=0)
    first, hidden, out = (layer.kernel.numpy() for layer in model.layers)
    assert first.std() == pytest.approx(np.sqrt(2 / 64), rel=0.05)  # He, input
    assert hidden.std() == pytest.approx(np.sqrt(2 / 1024), rel=0.05)  # He, hidden
    assert not out.any() and model.layers[-1].width_mult == 16.0  # zero readout
    plain = mup.set_base_shapes(
        _mlp(1024, keras.layers.Dense), _mlp(64, keras.layers.Dense), seed=0
    )
    std = plain.layers[-1].kernel.numpy().std()  # Table 3: var 1 / (m * fan_in)
    assert std == pytest.approx(np.sqrt(1 / (16 * 1024)), rel=0.05)
    nonzero = mup.set_base_shapes(
        _mlp(1024, lambda u: mup.MuReadout(u, readout_zero_init=False)),
        _mlp(64, lambda u: mup.MuReadout(u, readout_zero_init=False)),
        seed=0,
    )
    std = nonzero.layers[-1].kernel.numpy().std()  # Table 8: var 1 / base fan_in
    assert std == pytest.approx(np.sqrt(1 / 64), rel=0.05)


def test_mu_readout_scales_its_matmul_not_its_bias():
    layer = mup.MuReadout(3, output_mult=2.0, width_mult=4.0)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    layer.build((None, 6))
    layer.kernel.assign(np.ones((6, 3), "float32"))
    layer.bias.assign(np.full((3,), 1.5, "float32"))
    expected = 0.5 * x @ np.ones((6, 3)) + 1.5
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)), expected, rtol=1e-5
    )
    assert mup.MuReadout.from_config(layer.get_config()).width_mult == 4.0


def test_a_base_width_model_trains_like_plain_adam():
    x, y = digits(128)
    runs = []
    for optimizer in (mup.MuAdam(0.03), keras.optimizers.Adam(0.03)):
        keras.utils.set_random_seed(1)
        model = mup.set_base_shapes(_mlp(64), _mlp(64), _mlp(128), seed=0)
        model.compile(optimizer=optimizer, loss=_logits_loss())
        runs.append([float(model.train_on_batch(x, y)) for _ in range(3)])
        runs[-1].append(model.layers[-1].kernel.numpy())
    assert runs[0][:3] == pytest.approx(runs[1][:3], rel=1e-6)
    np.testing.assert_allclose(runs[0][3], runs[1][3], rtol=1e-5, atol=1e-7)


def test_save_and_load_keep_the_multipliers_and_the_optimizer(tmp_path):
    x, y = digits(128)
    model = mup.set_base_shapes(_mlp(128), _mlp(32), seed=0)
    model.compile(optimizer=mup.MuAdam(0.01), loss=_logits_loss())
    model.train_on_batch(x, y)
    path = str(tmp_path / "mup.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is mup.MuAdam
    assert loaded.layers[-1].width_mult == 4.0
    assert list(mup.mup_multipliers(loaded).values()) == list(
        mup.mup_multipliers(model).values()
    )
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    assert loaded.optimizer.mup_multipliers == _expected(128, 32, "adam")
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_clone_model_keeps_the_records_and_draws_mup_values():
    model = mup.set_base_shapes(_mlp(256), _mlp(64), seed=0)
    clone = keras.models.clone_model(model)
    assert [r["lr_mult"] for r in mup.mup_multipliers(clone).values()] == _expected(
        256, 64, "adam"
    )
    assert not clone.layers[-1].kernel.numpy().any()
    assert clone.layers[-1].width_mult == 4.0


def test_a_base_model_of_another_structure_is_refused():
    other = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(32), mup.MuReadout(10)]
    )
    with pytest.raises(ValueError, match="base_model"):
        mup.set_base_shapes(_mlp(128), other)
    with pytest.raises(ValueError, match="delta_model"):
        mup.set_base_shapes(_mlp(128), _mlp(32), other)
    with pytest.raises(ValueError, match="Received: rescale=1"):
        mup.set_base_shapes(_mlp(128), _mlp(32), rescale=1)


@pytest.mark.parametrize("cls", [mup.MuAdam, mup.MuAdamW, mup.MuSGD])
def test_optimizers_serialize(cls):
    optimizer = cls(learning_rate=0.02)
    config = optimizer.get_config()
    again = cls.from_config(config)
    assert again.get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is cls


def test_attention_gets_one_over_d_scaling_and_keeps_its_records(tmp_path):
    def block(key_dim):
        x = keras.Input((5, 16))
        h = mup.MuMultiHeadAttention(2, key_dim)(x, x)
        out = mup.MuReadout(3)(keras.layers.Flatten()(h))
        return keras.Model(x, out)

    model = mup.set_base_shapes(block(32), block(8), seed=0)
    attention = model.layers[1]
    assert attention.base_key_dim == 8
    assert attention.attention_scale == pytest.approx(np.sqrt(8) / 32)
    table = mup.mup_multipliers(model)
    query = [v for k, v in table.items() if k.endswith("query/kernel")][0]
    assert query["fan_out_mult"] == 4.0 and query["lr_mult"] == 1.0  # input weight
    output = [v for k, v in table.items() if k.endswith("attention_output/kernel")]
    assert output[0]["fan_in_mult"] == 4.0 and output[0]["fan_out_mult"] is None
    path = str(tmp_path / "attention.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.layers[1].attention_scale == pytest.approx(np.sqrt(8) / 32)
    assert [r["lr_mult"] for r in mup.mup_multipliers(loaded).values()] == [
        r["lr_mult"] for r in table.values()
    ]
    x = np.random.default_rng(0).normal(size=(2, 5, 16)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)),
        keras.ops.convert_to_numpy(model(x)),
        rtol=1e-5,
        atol=1e-6,
    )


_BACKEND_CHECK = """
import json, os, tempfile
import keras, numpy as np
from keras_weightinit import mup
from keras_weightinit.transfer import coord_check, digits, digits_mlp
x, y = digits(128)
out = {"backend": keras.backend.backend()}
mu = coord_check(digits_mlp, [64, 256, 1024], x, y, steps=3, mup=True)
sp = coord_check(digits_mlp, [64, 256, 1024], x, y, steps=3, mup=False)
out["mup"] = [mu.growth("readout"), mu.growth("hidden1")]
out["sp"] = sp.growth("readout")
model = mup.set_base_shapes(digits_mlp(128), digits_mlp(32), seed=0)
model.compile(optimizer=mup.MuAdam(0.01),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(x, y, epochs=1, verbose=0)
out["mults"] = model.optimizer.mup_multipliers
path = os.path.join(tempfile.mkdtemp(), "m.keras")
model.save(path)
loaded = keras.models.load_model(path)
loaded.fit(x, y, epochs=1, verbose=0)
out["loaded"] = [type(loaded.optimizer).__name__, loaded.optimizer.mup_multipliers]
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_mup_on_other_backends(backend, run_on_backend):
    out = run_on_backend(backend, "-c", _BACKEND_CHECK)
    assert out["backend"] == backend
    assert max(out["mup"]) < 2 and out["sp"] > 4
    expected = _expected(128, 32, "adam")
    assert out["mults"] == pytest.approx(expected)
    assert out["loaded"] == ["MuAdam", pytest.approx(expected)]


# --------------------------------------------------------------------------
# KerasHub's Transformers, width and depth


def _gpt(width, layers=2, heads=2, **kwargs):
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=64,
        num_layers=layers,
        num_heads=heads,
        hidden_dim=width,
        intermediate_dim=2 * width,
        max_sequence_length=16,
        dropout=0.0,
        **kwargs,
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def _step(model, x, y) -> float:
    return float(model.train_on_batch(x, y, return_dict=True)["loss"])


def _tokens(seed=0, batch=4, length=16):
    rng = np.random.default_rng(seed)
    x = {
        "token_ids": rng.integers(0, 64, (batch, length)).astype("int32"),
        "padding_mask": np.ones((batch, length), "int32"),
    }
    return x, rng.integers(0, 64, (batch, length)).astype("int32")


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_gpt_multipliers_equal_the_width_and_depth_tables(alpha):
    # width 64 over 16 (m = 4, head size 32 over 8), 4 blocks over 2 (r = 2)
    model = mup.set_base_shapes(_gpt(64, 4), _gpt(16, 2), depth_alpha=alpha, seed=0)
    adam, sgd = mup.mup_multipliers(model), mup.mup_multipliers(model, "sgd")
    m, r, c_qk, c_branch = 4.0, 2.0, 0.5**0.5, 2.0**-alpha

    def row(path):
        return (
            adam[path]["lr_mult"],
            adam[path]["epsilon_mult"],
            adam[path]["weight_decay_mult"],
            sgd[path]["lr_mult"],
        )

    block = "transformer_layer_3/"
    expected = {  # (Adam lr, Adam epsilon, decay, SGD lr)
        "token_embedding/embeddings": (1, 1 / m, 1, m),
        "position_embedding/embeddings": (1, 1 / m, 1, m),
        block + "self_attention/query/kernel": (
            r ** (alpha - 1) * c_qk / m,
            r**-alpha / m / c_qk,
            m / c_qk,
            r ** (2 * alpha - 1) * c_qk**2,
        ),
        block + "self_attention/value/kernel": (
            r ** (alpha - 1) / m,
            r**-alpha / m,
            m,
            r ** (2 * alpha - 1),
        ),
        block + "feedforward_output_dense/kernel": (
            r ** (alpha - 1) * c_branch / m,
            r**-alpha / m / c_branch,
            m / c_branch,
            r ** (2 * alpha - 1) * c_branch**2,
        ),
        block + "feedforward_output_dense/bias": (
            r ** (alpha - 1) * c_branch,
            r**-alpha / m / c_branch,
            1 / c_branch,
            m * r ** (2 * alpha - 1) * c_branch**2,
        ),
        block + "feedforward_layer_norm/gamma": (
            r ** (alpha - 1),
            r**-alpha / m,
            1,
            m * r ** (2 * alpha - 1),
        ),
        # the tied readout's 1/m, carried by the final normalization
        "layer_norm/gamma": (1 / m, 1 / m / (1 / m), m, m / m**2),
    }
    for path, values in expected.items():
        assert row(path) == pytest.approx(values), path
    tables = [p for p in adam if "embeddings" in p]
    assert tables == ["token_embedding/embeddings", "position_embedding/embeddings"]


def test_gpt_initialization_folds_the_multipliers():
    model = mup.set_base_shapes(_gpt(64, 4), _gpt(16, 2), seed=0)
    weights = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
    gamma = weights["layer_norm/gamma"]
    np.testing.assert_allclose(gamma, 0.25)  # 1 * (1 / m): the tied readout
    query = weights["transformer_layer_0/self_attention/query/kernel"]
    value = weights["transformer_layer_0/self_attention/value/kernel"]
    ratio = query.std() / value.std()  # both LeCun, the query x (8/32)^(1/4)
    assert ratio == pytest.approx(0.5**0.5, rel=0.1)
    out = weights["transformer_layer_0/feedforward_output_dense/kernel"]
    assert out.std() == pytest.approx(0.5 / np.sqrt(128), rel=0.1)  # x (2/4)^1


def test_gemma_tied_readout_folds_into_its_one_plus_scale_norm():
    model = mup.set_base_shapes(
        _family("gemma", 64, 1), _family("gemma", 16, 1), seed=0
    )
    scale = keras.ops.convert_to_numpy(
        model.backbone.get_layer("final_normalization").scale
    )
    np.testing.assert_allclose(scale, 0.25 - 1.0)  # 1 + scale = 1/m
    table = mup.mup_multipliers(model)
    assert table["token_embedding/embeddings"]["lr_mult"] == 1.0


def test_a_base_gpt_trains_exactly_like_plain_adamw():
    x, y = _tokens()
    runs = []
    for make in (
        lambda: mup.MuAdamW(1e-3, weight_decay=0.1),
        lambda: keras.optimizers.AdamW(1e-3, weight_decay=0.1),
    ):
        model = mup.set_base_shapes(_gpt(16, 2), _gpt(16, 2), seed=0)
        model.compile(optimizer=make(), loss=_logits_loss())
        runs.append([_step(model, x, y) for _ in range(3)])
        runs[-1].append(keras.ops.convert_to_numpy(model.weights[0]))
    assert runs[0][:3] == pytest.approx(runs[1][:3], rel=1e-6)
    np.testing.assert_allclose(runs[0][3], runs[1][3], rtol=1e-6, atol=1e-7)


def test_epsilon_and_decay_are_per_variable():
    # one weight, Adam epsilon x 1/4, decay x 4, lr x 1/4: a hidden weight at m=4
    variable = keras.Variable(np.full((2, 2), 0.5, "float32"))
    record = mup.parametrization.Record(fan_in_mult=4.0, fan_out_mult=4.0)
    setattr(variable, mup._TAG, record)
    optimizer = mup.MuAdamW(0.1, weight_decay=0.5, epsilon=0.2)
    optimizer.build([variable])
    gradient = np.full((2, 2), 0.01, "float32")
    optimizer.apply([gradient], [variable])
    lr = 0.1 / 4
    decayed = 0.5 * (1 - lr * 0.5 * 4)
    step = lr * np.sqrt(1 - 0.999) / (1 - 0.9)  # Keras's Adam, first step
    m, v = 0.1 * 0.01, 0.001 * 0.01**2
    expected = decayed - step * m / (np.sqrt(v) + 0.2 / 4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(variable), expected, rtol=1e-5
    )


def test_a_shallower_or_other_base_is_matched_by_blocks_or_refused():
    with pytest.raises(ValueError, match="base_model"):
        mup.set_base_shapes(_gpt(32, 2), _mlp(32))
    with pytest.raises(ValueError, match=r"Received: depth_alpha=2"):
        mup.set_base_shapes(_gpt(32, 2), _gpt(16, 2), depth_alpha=2)
    with pytest.raises(ValueError, match="zero_readout=True"):
        mup.set_base_shapes(_gpt(32, 2), _gpt(16, 2), zero_readout=True)
    model = _gpt(32, 2)
    before = [keras.ops.convert_to_numpy(v) for v in model.weights]
    with pytest.raises(ValueError, match="zero_readout"):
        mup.set_base_shapes(model, _gpt(16, 2), zero_readout=True)
    for a, v in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(v))


def test_zero_query_zeroes_one_score_kernel_per_attention():
    model = mup.set_base_shapes(_gpt(32, 2), _gpt(16, 2), zero_query=True, seed=0)
    zero = sorted(
        v.path
        for v in model.weights
        if "kernel" in v.path and not np.any(keras.ops.convert_to_numpy(v))
    )
    assert zero == [
        f"transformer_layer_{i}/self_attention/query/kernel" for i in range(2)
    ]


def _residual_mlp(width, depth):
    """64 -> width, `depth` residual blocks `x + W2 relu(W1 x)`, MuReadout."""
    x = keras.Input((64,))
    h = keras.layers.Dense(width, activation="relu")(x)
    for _ in range(depth):
        f = keras.layers.Dense(width, activation="relu")(h)
        h = keras.layers.Add()([h, keras.layers.Dense(width)(f)])
    return keras.Model(x, mup.MuReadout(10)(h))


_SAVED = """
import json, sys
import keras, numpy as np
import keras_weightinit
path, data = sys.argv[1], np.load(sys.argv[2])
model = keras.models.load_model(path)
loss = float(model.train_on_batch(data["x"], data["y"]))
print(json.dumps({"loss": loss, "optimizer": type(model.optimizer).__name__,
                  "mults": model.optimizer.mup_multipliers,
                  "sum": float(np.sum(keras.ops.convert_to_numpy(model.weights[2])))}))
"""


@pytest.mark.slow
def test_a_saved_deeper_wider_model_takes_the_same_next_step_in_a_fresh_process(
    tmp_path, run_on_backend
):
    x, y = digits(128)
    model = mup.set_base_shapes(_residual_mlp(64, 4), _residual_mlp(16, 2), seed=0)
    model.compile(optimizer=mup.MuAdamW(1e-2, weight_decay=0.1), loss=_logits_loss())
    model.train_on_batch(x, y)
    path = str(tmp_path / "mlp.keras")
    model.save(path)
    np.savez(tmp_path / "batch.npz", x=x, y=y)
    loss = float(model.train_on_batch(x, y))
    total = float(np.sum(keras.ops.convert_to_numpy(model.weights[2])))
    script = tmp_path / "load.py"
    script.write_text(_SAVED)
    out = run_on_backend(
        keras.backend.backend(), str(script), path, str(tmp_path / "batch.npz")
    )
    assert out["optimizer"] == "MuAdamW"
    assert out["mults"] == pytest.approx(model.optimizer.mup_multipliers)
    assert min(out["mults"]) < 0.2  # width 4x, depth 2x: the records came back
    assert out["loss"] == pytest.approx(loss, rel=1e-5)
    assert out["sum"] == pytest.approx(total, rel=1e-5)


def test_a_loaded_kerashub_model_gets_its_records_back_without_a_redraw(tmp_path):
    model = mup.set_base_shapes(_gpt(32, 4), _gpt(16, 2), seed=0)
    path = str(tmp_path / "gpt.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    before = [keras.ops.convert_to_numpy(v) for v in loaded.weights]
    mup.set_base_shapes(loaded, _gpt(16, 2), rescale=False)
    assert mup.mup_multipliers(loaded) == mup.mup_multipliers(model)
    for a, v in zip(before, loaded.weights, strict=True):
        np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(v))


def test_a_clone_with_the_optimizers_config_takes_the_same_steps():
    x, y = digits(128)
    model = mup.set_base_shapes(_residual_mlp(64, 4), _residual_mlp(16, 2), seed=0)
    model.compile(optimizer=mup.MuAdam(1e-2), loss=_logits_loss())
    model.optimizer.build(model.trainable_variables)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    config = model.optimizer.get_config()
    clone.compile(optimizer=mup.MuAdam.from_config(config), loss=_logits_loss())
    steps = [[float(m.train_on_batch(x, y)) for _ in range(2)] for m in (model, clone)]
    assert steps[0] == pytest.approx(steps[1], rel=1e-6)
    assert clone.optimizer.mup_multipliers == model.optimizer.mup_multipliers
    assert min(clone.optimizer.mup_multipliers) < 0.2


def _family(name, width, layers):
    """A KerasHub decoder or encoder of `width` and `layers` blocks, heads fixed."""
    import keras_hub

    models = keras_hub.models
    text = dict(
        vocabulary_size=64,
        num_layers=layers,
        hidden_dim=width,
        intermediate_dim=2 * width,
    )
    gqa = dict(num_query_heads=4, num_key_value_heads=2, **text)
    if name == "gpt2":
        return _gpt(width, layers)
    if name == "llama":  # grouped-query attention, untied readout
        return models.LlamaCausalLM(models.LlamaBackbone(**gqa), preprocessor=None)
    if name == "mistral":
        return models.MistralCausalLM(models.MistralBackbone(**gqa), preprocessor=None)
    if name == "qwen":
        return models.QwenCausalLM(models.QwenBackbone(**gqa), preprocessor=None)
    if name == "mixtral":  # experts (E, in, out)
        backbone = models.MixtralBackbone(num_experts=2, top_k=1, **gqa)
        return models.MixtralCausalLM(backbone, preprocessor=None)
    if name == "gemma":  # tied readout behind a 1 + scale norm
        backbone = models.GemmaBackbone(
            num_query_heads=2, num_key_value_heads=1, head_dim=width // 2, **text
        )
        return models.GemmaCausalLM(backbone, preprocessor=None)
    return models.BertBackbone(num_heads=2, max_sequence_length=16, **text)  # bert


@pytest.mark.parametrize(
    "name", ["gpt2", "llama", "gemma", "bert", "mistral", "qwen", "mixtral"]
)
def test_every_family_gets_the_width_depth_and_attention_rules(name):
    # width 64 over 16 with the heads fixed (head size x 4), 4 blocks over 2
    model = mup.set_base_shapes(_family(name, 64, 4), _family(name, 16, 2), seed=0)
    table = mup.mup_multipliers(model)
    kernels = {
        v.path: table[v.path]
        for v in model.trainable_variables
        if len(v.shape) >= 2 and not v.path.endswith("bias")
    }
    blocks = {p: r for p, r in kernels.items() if r["block"]}
    folds = sorted(round(r["fold"], 4) for r in blocks.values() if r["fold"] != 1)
    # two branch ends per block x 1/2 ((2/4)^1), a query and a key x (8/32)^(1/4)
    assert folds == [0.5] * 8 + [0.7071] * 8, folds
    for path, row in blocks.items():  # hidden: Adam lr 1/m, times the fold
        assert row["fan_in_mult"] == 4.0, path
        assert row["lr_mult"] == pytest.approx(row["fold"] / 4), path
    outside = [r for r in kernels.values() if not r["block"]]
    assert all(r["lr_mult"] in (1.0, 0.25) for r in outside)
    base = mup.set_base_shapes(_family(name, 16, 2), _family(name, 16, 2), seed=0)
    rows = mup.mup_multipliers(base).values()
    assert {(r["lr_mult"], r["epsilon_mult"], r["fold"]) for r in rows} == {
        (1.0, 1.0, 1.0)
    }


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_a_folded_multiplier_trains_exactly_like_the_multiplier(optimizer):
    # x + c * W2 relu(W1 x) with W2 plain, against x + W2' relu(W1 x), W2' = c W2
    c = 0.3
    x, y = digits(64)

    def model(scale):
        inputs = keras.Input((64,))
        f = keras.layers.Dense(64, activation="relu", name="w1")(inputs)
        f = keras.layers.Dense(64, name="w2")(f)
        f = keras.layers.Rescaling(scale)(f)
        h = keras.layers.Add()([inputs, f])
        return keras.Model(inputs, keras.layers.Dense(10, name="out")(h))

    keras.utils.set_random_seed(0)
    plain, folded = model(c), model(1.0)
    folded.set_weights(plain.get_weights())
    for variable in folded.get_layer("w2").weights:
        variable.assign(variable * c)
        setattr(variable, mup._TAG, mup.parametrization.Record(fold=c))
    outputs = []
    for m in (plain, folded):
        if optimizer == "adamw":
            opt = mup.MuAdamW(1e-2, weight_decay=0.3, epsilon=1e-3)
        else:
            opt = mup.MuSGD(0.1, weight_decay=0.01)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # `plain` has no records
            m.compile(optimizer=opt, loss=_logits_loss())
            for _ in range(3):
                m.train_on_batch(x, y)
        outputs.append(keras.ops.convert_to_numpy(m(x)))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)
