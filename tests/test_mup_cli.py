"""Tests of `keras_weightinit.mup_cli`.

`coord-check` and `transfer` check their arguments without Keras, and write
their summaries.
"""

import json
import subprocess
import sys

import pytest


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
