"""Tests of `keras_weightinit.mup`.

The table, the records, the optimizers, on every backend (the coordinate
check itself: `test_transfer.py`).
"""

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
