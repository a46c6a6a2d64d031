"""The µP commands of `keras_weightinit_cli`.

`coord-check` and `transfer` check their arguments without Keras, and write
their summaries.
"""

import json
import subprocess
import sys

import pytest


def _exit_codes_without_keras(*argvs):
    """`cli.main` on each argv in a fresh process: (printed line, stderr).

    The printed line is the exit codes and whether Keras was imported.
    """
    code = (
        "import sys\n"
        "import keras_weightinit_cli as cli\n"
        "def code(argv):\n"
        "    try:\n"
        "        return cli.main(argv)\n"
        "    except SystemExit as stop:  # argparse's choices\n"
        "        return stop.code\n"
        f"print([code(argv) for argv in {list(argvs)!r}], 'keras' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    return done.stdout.strip(), done.stderr


def test_cli_checks_arguments_without_keras():
    out, err = _exit_codes_without_keras(
        ["coord-check", "--widths", "64"],
        ["transfer", "--learning-rates", "0,1"],
        ["coord-check", "--steps", "0"],
        ["transfer", "--seeds", "0,x"],
    )
    assert out == "[2, 2, 2, 2] False", err
    assert "argument --seeds" in err
    assert "argument --widths" in err
    assert "argument --learning-rates" in err


@pytest.mark.slow
def test_coord_check_command_writes_its_summary(tmp_path):
    import keras_weightinit_cli as cli

    logdir = tmp_path / "cc"
    assert cli.main(["coord-check", "--quick", "--logdir", str(logdir)]) == 0
    summary = json.loads((logdir / "summary.json").read_text())
    assert [r["parametrization"] for r in summary["results"]] == ["mup", "sp"]
    assert (logdir / "summary.png").stat().st_size > 0


def test_transfer_flags_a_best_learning_rate_at_the_edge_of_its_grid():
    from keras_weightinit.transfer import TransferResult
    from keras_weightinit_cli.commands import format_transfer

    losses = {"64": [1.0, 0.5, 1.0], "128": [0.4, 0.6, 0.9]}
    result = TransferResult(
        [64, 128], [0.01, 0.1, 1.0], {"mup": losses}, "adam", 1, [0]
    )
    assert result.best_at_edge("mup") == [128]
    assert result.to_dict()["best_at_edge"] == {"mup": [128]}
    table = format_transfer(result)
    assert "64: 0.1," in table and "128: 0.01 (edge)" in table
    assert "at the edge of the grid for widths [128]" in table


def test_coord_check_shows_progress(capsys):
    from keras_weightinit.transfer import coord_check, digits, digits_mlp

    x, y = digits(32)
    coord_check(digits_mlp, [8, 16], x, y, steps=1, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "mup width     8",
        "mup width    16",
    ]


def test_gpt_coord_check_options_are_checked_without_keras():
    code = (
        "import sys\n"
        "import keras_weightinit_cli as cli\n"
        "def code(argv):\n"
        "    try:\n"
        "        return cli.main(argv)\n"
        "    except SystemExit as stop:  # argparse's choices\n"
        "        return stop.code\n"
        "codes = [code(['coord-check', '--model', 'gpx']),\n"
        "         code(['coord-check', '--over', 'depth']),\n"
        "         code(['coord-check', '--model', 'gpt', '--over', 'x'])]\n"
        "print(codes, 'keras' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "[2, 2, 2] False", done.stderr
    assert "argument --model" in done.stderr
    assert "argument --over" in done.stderr


def test_gpt_coord_check_defaults_follow_over():
    from keras_weightinit_cli.parser import parser, to_settings

    def settings(*argv):
        return to_settings(parser().parse_args(["coord-check", *argv]))

    assert settings("--model", "gpt", "--over", "depth").widths == (2, 4, 8, 16)
    assert settings("--model", "gpt").widths == (64, 128, 256, 512, 1024)
    assert settings().widths == (64, 128, 256, 512, 1024, 2048)


def test_gpt_transfer_options_are_checked_without_keras():
    gpt = ["transfer", "--model", "gpt"]
    out, err = _exit_codes_without_keras(
        ["transfer", "--model", "gpx"],
        ["transfer", "--over", "depth"],
        [*gpt, "--over", "x"],
        [*gpt, "--steps", "0"],
        [*gpt, "--optimizer", "sgd"],
        [*gpt, "--widths", "2"],
    )
    assert out == "[2, 2, 2, 2, 2, 2] False", err
    lines = err.splitlines()
    assert len(lines) == 6, err
    for option in ("--model", "--over", "--steps", "--optimizer", "--widths"):
        assert any(f"argument {option}" in line for line in lines), option
    assert "must be 'width' unless model='gpt'. Received: 'depth'" in err
    assert "must be 'adam' with model='gpt'. Received: 'sgd'" in err


def test_gpt_transfer_defaults_follow_over():
    from keras_weightinit_cli.parser import GPT_RATES, parser, to_settings

    def settings(*argv):
        return to_settings(parser().parse_args(["transfer", *argv]))

    depth = settings("--model", "gpt", "--over", "depth")
    assert (depth.widths, depth.over, depth.model) == ((2, 4, 8, 16), "depth", "gpt")
    width = settings("--model", "gpt")
    assert (width.widths, width.learning_rates) == ((64, 128, 256, 512), GPT_RATES)
    assert (width.steps, width.seeds) == (200, (0, 1, 2))
    quick = settings("--model", "gpt", "--over", "depth", "--quick", "--steps", "3")
    assert (quick.widths, quick.steps, quick.seeds) == ((1, 2), 3, (0,))
    assert settings().learning_rates is None  # the digits MLP's own grid


@pytest.mark.slow
def test_gpt_transfer_command_writes_its_summary(tmp_path, capsys):
    import keras_weightinit_cli as cli

    logdir = tmp_path / "transfer"
    argv = ["transfer", "--model", "gpt", "--over", "depth", "--quick"]
    assert cli.main([*argv, "--seeds", "0,1", "--logdir", str(logdir)]) == 0
    summary = json.loads((logdir / "summary.json").read_text())
    assert (summary["over"], summary["epochs"], summary["widths"]) == (
        "depth",
        2,
        [1, 2],
    )
    assert len(summary["seed_losses"]["mup"]["2"]) == 2  # one row per seed
    assert set(summary["seed_spread"]["sp"]["1"]) == {
        "lr_mean",
        "lr_std",
        "loss_mean",
        "loss_std",
    }
    assert (logdir / "summary.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "mup: best learning rate per depth {1: " in out and "per seed {1: lr" in out


def test_transfer_reports_the_spread_over_seeds():
    from keras_weightinit.transfer import TransferResult
    from keras_weightinit_cli.commands import format_transfer

    seed_losses = {
        "mup": {
            "2": [[3.0, 2.0, 3.0], [3.2, 2.4, 3.2]],
            "4": [[2.0, 3.0, 4.0], [3.0, 2.0, 3.0]],
        }
    }
    losses = {
        "mup": {
            w: [sum(col) / 2 for col in zip(*rows, strict=True)]
            for w, rows in seed_losses["mup"].items()
        }
    }
    result = TransferResult(
        [2, 4], [0.01, 0.1, 1.0], losses, "adam", 5, [0, 1], seed_losses, "depth"
    )
    spread = result.seed_spread("mup")
    assert spread[2]["loss_mean"] == pytest.approx(2.2)
    assert spread[2]["loss_std"] == pytest.approx(0.2)
    # depth 4: seed 0 at the grid's edge (0.01), seed 1 at the vertex 0.1
    assert spread[4]["lr_mean"] == pytest.approx((0.01 * 0.1) ** 0.5)
    assert spread[4]["lr_std"] == pytest.approx(10**0.5)
    table = format_transfer(result)
    assert "mup: best learning rate per depth {2: 0.1, 4: " in table
    assert "per seed {2: lr 0.1 x1.00, loss 2.200 ± 0.200" in table
