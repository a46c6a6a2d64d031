"""µP: the table, the records, the optimizers, the coordinate check, the CLI."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_weightinit import mup
from keras_weightinit.mup_checks import (
    TransferResult,
    coord_check,
    digits,
    digits_mlp,
    lr_transfer,
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


def test_coordinate_check_tells_mup_from_the_standard_parametrization():
    x, y = digits(128)
    widths = [64, 256, 1024]
    mu = coord_check(digits_mlp, widths, x, y, steps=3, mup=True)
    sp = coord_check(digits_mlp, widths, x, y, steps=3, mup=False)
    assert mu.layers == ["hidden0", "hidden1", "readout"]
    assert mu.growth("readout") < 2 and mu.growth("hidden1") < 2
    assert sp.growth("readout") > 4
    assert min(mu.values["readout"][-1]) > 0.1  # the readout learned


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


@pytest.mark.slow
def test_lr_transfer_returns_a_loss_per_width_and_learning_rate(tmp_path):
    result = lr_transfer([16, 32], [1e-3, 1e-2], epochs=1, seeds=[0])
    assert set(result.losses) == {"sp", "mup"}
    assert all(len(row) == 2 for d in result.losses.values() for row in d.values())
    assert set(result.best_learning_rates("mup")) == {16, 32}
    assert os.path.exists(result.plot(str(tmp_path / "t.png")))
    json.dumps(result.to_dict())


@pytest.mark.slow
def test_lr_transfer_runs_do_not_depend_on_the_runs_before_them():
    # One compiled model per width is re-drawn and restarted for each run: a
    # run must give what it gives alone, and seeds average.
    args = {"epochs": 1, "parametrizations": ["sp", "mup"]}
    both = lr_transfer([16, 32], [3e-2, 1e-3], seeds=[0, 1], **args)
    for seed in (0, 1):
        alone = lr_transfer([16, 32], [1e-3], seeds=[seed], **args)
        swapped = lr_transfer([16, 32], [1e-3, 3e-2], seeds=[seed], **args)
        for part in ("sp", "mup"):
            for width in ("16", "32"):
                a = alone.losses[part][width][0]
                assert swapped.losses[part][width][0] == pytest.approx(a, rel=1e-5)
    seed0 = lr_transfer([16, 32], [1e-3, 3e-2], seeds=[0], **args)
    seed1 = lr_transfer([16, 32], [1e-3, 3e-2], seeds=[1], **args)
    for part in ("sp", "mup"):
        mean = (np.array(seed0.losses[part]["32"]) + seed1.losses[part]["32"]) / 2
        np.testing.assert_allclose(both.losses[part]["32"], mean, rtol=1e-5)
        assert seed0.losses[part]["32"] != seed1.losses[part]["32"]


def test_best_learning_rate_is_the_vertex_of_the_parabola_in_log_log():
    rates = [1e-3, 1e-2, 1e-1, 1.0]
    logs = np.log(rates)

    def losses(optimum):  # log loss = (log lr - log optimum)^2 + 0.1
        return list(np.exp((logs - np.log(optimum)) ** 2 / 10 + 0.1))

    result = TransferResult(
        [8, 16, 32],
        rates,
        {"mup": {"8": losses(0.03), "16": losses(0.2), "32": losses(1e-4)}},
        "adam",
        1,
        [0],
    )
    best = result.best_learning_rates("mup")
    assert best[8] == pytest.approx(0.03, rel=1e-6)  # between grid points
    assert best[16] == pytest.approx(0.2, rel=1e-6)
    assert best[32] == pytest.approx(1e-3)  # at the end of the grid: the grid point
    diverged = dict(result.losses["mup"], **{"8": [1.0, 0.5, float("nan"), 1.0]})
    result.losses["mup"] = diverged
    assert result.best_learning_rates("mup")[8] == pytest.approx(
        1e-2
    )  # next to a diverged run


def test_lr_transfer_checks_seeds():
    for bad in ([], [-1], [1.5], [True]):
        with pytest.raises(ValueError, match="seeds"):
            lr_transfer([16, 32], [1e-3], seeds=bad)


def test_cli_checks_arguments_without_keras():
    code = (
        "import sys\n"
        "from keras_weightinit import cli\n"
        "codes = [cli.main(['coord-check', '--widths', '64']),\n"
        "         cli.main(['transfer', '--learning-rates', '0,1']),\n"
        "         cli.main(['coord-check', '--steps', '0']),\n"
        "         cli.main(['transfer', '--seeds', '0,x'])]\n"
        "print(codes, 'keras' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "[2, 2, 2, 2] False", done.stderr
    assert "argument --seeds" in done.stderr
    assert "argument --widths" in done.stderr
    assert "argument --learning-rates" in done.stderr


@pytest.mark.slow
def test_coord_check_command_writes_its_summary(tmp_path):
    from keras_weightinit import cli

    logdir = tmp_path / "cc"
    assert cli.main(["coord-check", "--quick", "--logdir", str(logdir)]) == 0
    summary = json.loads((logdir / "summary.json").read_text())
    assert [r["parametrization"] for r in summary["results"]] == ["mup", "sp"]
    assert (logdir / "summary.png").stat().st_size > 0


_BACKEND_CHECK = """
import json, os, tempfile
import keras, numpy as np
from keras_weightinit import mup
from keras_weightinit.mup_checks import coord_check, digits, digits_mlp
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
