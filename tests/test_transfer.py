"""Tests of `keras_weightinit.transfer`.

The coordinate check tells µP from the standard parametrization; the
learning-rate sweep and its optimum.
"""

import json
import os
import re

import numpy as np
import pytest

from keras_weightinit.transfer import (
    TransferResult,
    coord_check,
    digits,
    digits_mlp,
    lr_transfer,
)


def test_coordinate_check_tells_mup_from_the_standard_parametrization():
    x, y = digits(128)
    widths = [64, 256, 1024]
    mu = coord_check(digits_mlp, widths, x, y, steps=3, mup=True)
    sp = coord_check(digits_mlp, widths, x, y, steps=3, mup=False)
    assert mu.layers == ["hidden0", "hidden1", "readout"]
    assert mu.growth("readout") < 2 and mu.growth("hidden1") < 2
    assert sp.growth("readout") > 4
    assert min(mu.values["readout"][-1]) > 0.1  # the readout learned


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


_GPT_CHECK = (
    "import json\n"
    "from keras_weightinit.transfer import gpt_coord_check\n"
    "mup = gpt_coord_check([16, 64], depth=1, batch=2, length=16)\n"
    "sp = gpt_coord_check([16, 64], mup=False, depth=1, batch=2, length=16)\n"
    "print(json.dumps({'mup': mup.growth('logits'), 'sp': sp.growth('last_block'),\n"
    "                  'block': mup.growth('last_block')}))\n"
)


def _assert_gpt_check(found: dict) -> None:
    assert found["mup"] < 2 and found["block"] < 2, found
    # at widths 16-64 the standard parametrization barely grows either: the
    # separation is measured at 64-1024 in docs/mup.md, not asserted here
    assert found["sp"] > 0, found


@pytest.mark.slow
def test_gpt_coord_check_is_flat_under_mup_on_tensorflow():
    from keras_weightinit.transfer import gpt_coord_check

    mup = gpt_coord_check([16, 64], depth=1, batch=2, length=16)
    sp = gpt_coord_check([16, 64], mup=False, depth=1, batch=2, length=16)
    _assert_gpt_check(
        {
            "mup": mup.growth("logits"),
            "sp": sp.growth("last_block"),
            "block": mup.growth("last_block"),
        }
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_gpt_coord_check_is_flat_under_mup_on_other_backends(run_on_backend, backend):
    _assert_gpt_check(run_on_backend(backend, "-c", _GPT_CHECK))


def test_gpt_coord_check_rejects_a_bad_over():
    from keras_weightinit.transfer import gpt_coord_check

    with pytest.raises(ValueError, match="Received: over='height'"):
        gpt_coord_check([16, 32], over="height")


def test_gpt_lr_transfer_runs_do_not_depend_on_the_runs_before_them():
    # One compiled model per size: each run loads its seed's initial weights
    # and restarts the optimizer, so it gives what it gives alone.
    from keras_weightinit.transfer import gpt_lr_transfer

    small = {"steps": 2, "depth": 1, "batch": 2, "length": 8}
    both = gpt_lr_transfer(
        [8, 16], [0.03, 0.003], seeds=(0, 1), parametrizations=("mup",), **small
    )
    alone = gpt_lr_transfer(
        [8, 16], [0.003], seeds=(1,), parametrizations=("mup",), **small
    )
    assert both.seed_losses["mup"]["16"][1][0] == pytest.approx(
        alone.losses["mup"]["16"][0], rel=1e-5
    )
    assert both.losses["mup"]["16"][0] == pytest.approx(
        np.mean([row[0] for row in both.seed_losses["mup"]["16"]]), rel=1e-6
    )
    assert (both.over, both.epochs, both.seeds) == ("width", 2, [0, 1])
    assert set(both.to_dict()) >= {"seed_losses", "seed_spread", "optimum_shift"}


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"over": "height"}, "Received: over='height'"),
        ({"seeds": ()}, "Received: seeds=[]"),
        ({"learning_rates": []}, "Received: learning_rates=[]"),
        ({"parametrizations": ("mup", "ntk")}, "Received: parametrizations="),
        ({"steps": 0}, "Received: steps=0"),
    ],
)
def test_gpt_lr_transfer_checks_its_arguments(arguments, message):
    from keras_weightinit.transfer import gpt_lr_transfer

    with pytest.raises(ValueError, match=re.escape(message)):
        gpt_lr_transfer(**{"sizes": [8, 16], "learning_rates": [0.01], **arguments})


def test_optimum_shift_is_max_over_min_of_the_best_learning_rates():
    result = TransferResult(
        [2, 4, 8],
        [0.001, 0.01, 0.1],
        {"sp": {"2": [3, 1, 3], "4": [1, 3, 4], "8": [2, 3, 1]}},
        "adam",
        1,
        [0],
        over="depth",
    )
    assert result.best_learning_rates("sp") == pytest.approx(
        {2: 0.01, 4: 0.001, 8: 0.1}
    )
    assert result.optimum_shift("sp") == pytest.approx(100.0)
    spread = result.seed_spread("sp")[2]  # one seed: no spread
    assert (spread["lr_std"], spread["loss_std"], spread["loss_mean"]) == (1.0, 0.0, 1)
