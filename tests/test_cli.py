"""`keras-weightinit compare`: outputs, their agreement with the runs, errors.

`--help` and bad arguments answer before Keras or TensorFlow is imported; a
user's mistake is one line on stderr and exit 2, never a traceback.
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing import plugin_event_accumulator as pea

from keras_weightinit.compare import ARTICLE_SCHEMES, CompareConfig
from keras_weightinit_cli import main
from keras_weightinit_cli.parser import OTHER_SCHEMES, QUICK
from keras_weightinit_cli.parser import parser as _parser
from keras_weightinit_cli.parser import to_settings as _config


def _scalars(run_dir: Path, tag: str) -> list[float]:
    acc = pea.EventAccumulator(str(run_dir))
    acc.Reload()
    import tensorflow as tf

    return [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]


def _tags(run_dir: Path) -> dict:
    acc = pea.EventAccumulator(str(run_dir))
    acc.Reload()
    return acc.Tags()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("compare") / "out"
    code = main(["compare", "--quick", "--logdir", str(logdir), "--verbose", "0"])
    return code, logdir


@pytest.mark.slow
def test_quick_run_writes_all_four_outputs(quick_run):
    code, logdir = quick_run
    assert code == 0
    for name in ("summary.md", "summary.json", "summary.png"):
        assert (logdir / name).stat().st_size > 0
    assert (logdir / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((logdir / "summary.json").read_text())
    assert [s["scheme"] for s in summary["schemes"]] == list(ARTICLE_SCHEMES)
    for scheme in ARTICLE_SCHEMES:
        run = logdir / scheme / "seed0"
        assert {p.name for p in run.iterdir()} >= {"train", "validation", "gradients"}
        assert "epoch_loss" in _tags(run / "train")["tensors"]
        assert "epoch_accuracy" in _tags(run / "validation")["tensors"]
        histograms = [
            t for t in _tags(run / "gradients")["tensors"] if "/gradient" in t
        ]
        assert any(t.endswith("kernel/gradient") for t in histograms)
    table = (logdir / "summary.md").read_text()
    for scheme in ARTICLE_SCHEMES:
        assert f"| {scheme} |" in table
    for field in (
        "val_accuracy_mean",
        "final_loss_mean",
        "epochs_to_target",
        "gradient_ratio_median",
        "verdict",
    ):
        assert field in summary["schemes"][0]


@pytest.mark.slow
def test_summary_numbers_are_the_ones_the_runs_logged(quick_run):
    _, logdir = quick_run
    summary = json.loads((logdir / "summary.json").read_text())
    for scheme in summary["schemes"]:
        run = scheme["runs"][0]
        logged_acc = _scalars(
            logdir / scheme["scheme"] / "seed0" / "validation", "epoch_accuracy"
        )
        np.testing.assert_allclose(run["val_accuracy"], logged_acc, rtol=1e-6)
        assert scheme["val_accuracy_mean"] == pytest.approx(logged_acc[-1])
        logged_loss = _scalars(
            logdir / scheme["scheme"] / "seed0" / "train", "epoch_loss"
        )
        if np.isfinite(logged_loss[-1]):
            assert scheme["final_loss_mean"] == pytest.approx(logged_loss[-1], rel=1e-6)
        else:
            assert scheme["final_loss_mean"] is None


def test_zeros_stay_at_chance_and_he_learns(tmp_path):
    logdir = tmp_path / "out"
    code = main(
        [
            "compare",
            "--schemes",
            "zeros,he",
            "--depth",
            "4",
            "--width",
            "64",
            "--epochs",
            "4",
            "--seeds",
            "1",
            "--logdir",
            str(logdir),
            "--verbose",
            "0",
        ]
    )
    assert code == 0
    by_name = {
        s["scheme"]: s
        for s in json.loads((logdir / "summary.json").read_text())["schemes"]
    }
    assert by_name["zeros"]["val_accuracy_mean"] < 0.2
    assert by_name["he"]["val_accuracy_mean"] > 0.6


def test_an_npz_dataset_and_an_initializer_string_work(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2, 5)).astype("float32")
    y = (x.sum(axis=(1, 2)) > 0).astype("int64")
    path = tmp_path / "data.npz"
    np.savez(path, x_train=x[:80], y_train=y[:80], x_test=x[80:], y_test=y[80:])
    logdir = tmp_path / "out"
    code = main(
        [
            "compare",
            "--dataset",
            str(path),
            "--schemes",
            "keras_weightinit>HeUniform",
            "--depth",
            "2",
            "--width",
            "8",
            "--epochs",
            "1",
            "--seeds",
            "2",
            "--logdir",
            str(logdir),
            "--verbose",
            "0",
        ]
    )
    assert code == 0
    summary = json.loads((logdir / "summary.json").read_text())
    scheme = summary["schemes"][0]
    assert len(scheme["runs"]) == 2
    finals = [run["val_accuracy"][-1] for run in scheme["runs"]]
    assert scheme["val_accuracy_mean"] == pytest.approx(np.mean(finals))
    assert scheme["val_accuracy_std"] == pytest.approx(np.std(finals))
    assert (logdir / "keras_weightinit_HeUniform" / "seed1" / "validation").is_dir()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--schemes", "he,kaiming"],
            "argument --schemes: has an unknown scheme 'kaiming'",
        ),
        (["--schemes", "he,he"], "argument --schemes: names 'he' twice"),
        (["--schemes", ","], "argument --schemes: must be a non-empty tuple"),
        (
            ["--dataset", "cifar"],
            "argument --dataset: must be one of ('digits', 'mnist', "
            "'fashion_mnist') or a path to an .npz file. Received: 'cifar'",
        ),
        (["--depth", "0"], "argument --depth: must be a positive int. Received: 0"),
        (["--quick", "--seeds", "0"], "argument --seeds: must be a positive int"),
        (["--depth", "two"], "argument --depth: invalid int value: 'two'"),
        (
            ["--optimizer", "lbfgs"],
            "argument --optimizer: must be one of ('sgd', 'adam', 'rmsprop'). "
            "Received: 'lbfgs'",
        ),
        (
            ["--learning-rate", "-1"],
            "argument --learning-rate: must be a positive finite number. "
            "Received: -1.0",
        ),
        (
            ["--activation", "wiggle"],
            "argument --activation: must be the name of a Keras activation. "
            "Received: 'wiggle'",
        ),
        (["--logdir", ""], "argument --logdir: must be a non-empty path"),
        (["--dataset", "BROKEN"], "cannot read"),
        (["--dataset", "EMPTY"], "cannot read"),
        (["--dataset", "NPY"], "cannot read"),
        (["--dataset", "TRUNCATED"], "cannot read"),
        (["--verbose", "3"], "argument --verbose: invalid choice"),
        (["--dataset", "NAN"], "x_train has 12 non-finite values (NaN or inf)"),
        (["--dataset", "PICKLED"], "x_train holds Python objects (a pickled"),
        (["--dataset", "FLOAT_LABELS"], "y_train must hold class indices"),
        (["--logdir", "FILE/out"], "argument --logdir: cannot be created:"),
        # the default schemes include dbn, which has no hidden units for gelu
        (
            ["--activation", "gelu"],
            "argument --activation: must be one of ('sigmoid', 'tanh', 'relu') "
            "with the 'dbn' scheme",
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(
    tmp_path, capsys, args, message
):
    files = {name: tmp_path / f"{name.lower()}.npz" for name in ("BROKEN", "EMPTY")}
    files["BROKEN"].write_bytes(b"not a zip file")
    files["EMPTY"].write_bytes(b"")
    files["NPY"] = tmp_path / "array.npz"  # an .npy file under an .npz name
    with open(files["NPY"], "wb") as f:
        np.save(f, np.zeros(3))
    files["TRUNCATED"] = tmp_path / "truncated.npz"
    np.savez(files["TRUNCATED"], x_train=np.zeros((50, 4)))
    files["TRUNCATED"].write_bytes(files["TRUNCATED"].read_bytes()[:-40])
    x, y = np.ones((6, 2)), np.zeros(6)
    for name, arrays in {
        "NAN": {"x_train": np.full((6, 2), np.nan), "y_train": y},
        "PICKLED": {"x_train": np.array([{"a": 1}] * 6, object), "y_train": y},
        "FLOAT_LABELS": {"x_train": x, "y_train": y + 0.5},
    }.items():
        files[name] = tmp_path / f"{name.lower()}.npz"
        np.savez(files[name], **{"x_test": x, "y_test": y, **arrays})
    files["FILE"] = tmp_path / "a_file"
    files["FILE"].write_text("not a folder")
    args = [str(files[a]) if a in files else a for a in args]
    args = [a.replace("FILE", str(files["FILE"])) for a in args]
    logdir = tmp_path / "out"
    assert _exit_code(["compare", "--logdir", str(logdir), *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not logdir.exists()


def _exit_code(argv: list[str]) -> int:
    """`main`'s return value, or the code of the SystemExit argparse raises."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def test_module_entry_point_exits_2_without_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_weightinit_cli",
            "compare",
            "--depth",
            "-3",
            "--logdir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "keras-weightinit: error: argument --depth: must be a positive int. "
        "Received: -3"
    ]


# ------------------------------------------- no TensorFlow before it is needed

_IMPORTS_AFTER_MAIN = """
import json, sys
from keras_weightinit_cli import main
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as exit:
    code = exit.code
heavy = [m for m in ("keras", "tensorflow", "numpy") if m in sys.modules]
print(json.dumps({"code": code, "imported": heavy}))
"""


@pytest.mark.parametrize(
    "argv, code",
    [
        (["--help"], 0),
        (["compare", "--help"], 0),
        ([], 2),
        (["compare", "--depth", "0"], 2),
        (["compare", "--depth", "two"], 2),
        (["compare", "--optimizer", "lbfgs"], 2),
        (["compare", "--dataset", "cifar"], 2),
        (["compare", "--quick", "--schemes", "he,he"], 2),
    ],
)
def test_help_and_bad_arguments_import_neither_keras_nor_tensorflow(argv, code):
    result = subprocess.run(
        [sys.executable, "-c", _IMPORTS_AFTER_MAIN, json.dumps(argv)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome == {"code": code, "imported": []}
    if code == 2:
        assert len(result.stderr.splitlines()) == 1, result.stderr


def test_a_bad_argument_from_the_command_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "keras_weightinit_cli", "compare", "--depth", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "keras-weightinit: error: argument --depth: must be a positive int. Received: 0"
    ]
    assert result.stdout == ""
    assert not any(tmp_path.iterdir())


_QUICK_ERRORS = [
    ["compare", "--depth", "0"],
    ["compare", "--dataset", "missing_file.npz"],
    ["compare", "--schemes", "he,no_such_scheme"],
    ["compare", "--logdir", "a_file/out"],
    ["coord-check", "--widths", "64"],
    ["transfer", "--seeds", "0,x"],
    ["transfer", "--over", "depth"],
    ["transfer", "--model", "gpt", "--steps", "0"],
]


def _command() -> list[str]:
    """The console script, or its module where the script is not installed."""
    script = Path(sys.executable).with_name("keras-weightinit")
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-m", "keras_weightinit_cli"]
    )


@pytest.mark.parametrize("argv", [["--help"], *_QUICK_ERRORS])
def test_help_and_bad_arguments_answer_within_2_5_seconds(tmp_path, argv):
    (tmp_path / "a_file").write_text("not a folder")
    start = time.perf_counter()
    result = subprocess.run(
        [*_command(), *argv], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    elapsed = time.perf_counter() - start
    assert elapsed < 2.5, (elapsed, result.stderr)
    if argv == ["--help"]:
        assert result.returncode == 0 and "compare" in result.stdout
        return
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("keras-weightinit: error: argument --")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


@pytest.mark.parametrize("command", ["compare", "coord-check", "transfer"])
def test_every_command_takes_backend_and_verbose(command):
    args = _parser().parse_args([command, "--backend", "jax", "--verbose", "0"])
    assert (args.backend, _config(args).verbose) == ("jax", 0)
    with pytest.raises(SystemExit):
        _parser().parse_args([command, "--backend", "numpy"])


def test_backend_jax_runs_the_command_on_jax(tmp_path):
    # the NaN dataset fails after Keras starts: on the backend asked for
    path = tmp_path / "nan.npz"
    x = np.full((8, 3), np.nan, "float32")
    np.savez(path, x_train=x, y_train=np.zeros(8), x_test=x, y_test=np.zeros(8))
    script = """
import json, sys
from keras_weightinit_cli import main
code = main(json.loads(sys.argv[1]))
import keras
print(code, keras.backend.backend())
"""
    argv = ["compare", "--backend", "jax", "--dataset", str(path), "--schemes", "he"]
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(argv)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert result.stdout.split() == ["2", "jax"], result.stderr[-2000:]
    assert "non-finite" in result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------ defaults: CompareConfig's


def test_the_command_line_defaults_are_compare_configs():
    parse = _parser().parse_args
    assert _config(parse(["compare"])) == CompareConfig()
    assert _config(parse(["compare", "--quick"])) == dataclasses.replace(
        CompareConfig(), **QUICK
    )
    quick_deep = _config(parse(["compare", "--quick", "--depth", "7"]))
    assert (quick_deep.depth, quick_deep.width) == (7, QUICK["width"])
    commands = next(
        a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    defaults = dataclasses.asdict(CompareConfig())
    options = [a for a in commands.choices["compare"]._actions if a.dest in defaults]
    assert len(options) == 15  # with --model gpt's --steps, --target-loss
    for action in options:
        assert action.default is None, action.dest  # CompareConfig fills it in
        value = defaults[action.dest]
        shown = ",".join(value) if isinstance(value, (list, tuple)) else str(value)
        assert f"default {shown}" in action.help, action.dest


def test_the_help_lists_every_known_scheme():
    from keras_weightinit.compare import DATA_DEPENDENT
    from keras_weightinit.initializers import scheme_names

    assert set(ARTICLE_SCHEMES + OTHER_SCHEMES) == set(scheme_names()) | set(
        DATA_DEPENDENT
    )
