"""`keras-weightinit compare --model gpt`: the story on a language model."""

import json
import re
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from keras_weightinit import lm
from keras_weightinit.compare_lm import build, compare_lm
from keras_weightinit_cli import main
from keras_weightinit_cli.settings import check_config, gpt_config, split_lm


def test_the_corpus_is_the_standard_librarys_source_sorted_and_split():
    train, validation = lm.stdlib_corpus(300_000)
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    first = files[0].read_bytes()
    assert train[: len(first)].tobytes() == first[: len(train)]
    assert len(train) + len(validation) == 300_000
    assert 0 < len(validation) < len(train)
    again = lm.stdlib_corpus(300_000)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], validation)


def test_windows_predict_the_next_byte():
    data = np.arange(256, dtype=np.uint8)
    x, y = lm.windows(data, 5, seed=0)
    assert x.shape == y.shape == (5, lm.CONTEXT)
    assert np.array_equal(y[:, :-1], x[:, 1:])


def test_a_text_file_is_a_corpus_and_a_tiny_one_is_refused(tmp_path):
    text = tmp_path / "text.txt"
    text.write_bytes(b"hello world " * 1000)
    train, validation = lm.read_corpus(text)
    assert len(train) == 10_800 and len(validation) == 1_200
    text.write_bytes(b"tiny")
    with pytest.raises(ValueError, match="holds 4 bytes"):
        lm.read_corpus(text)


def test_each_scheme_runs_on_its_architecture():
    assert split_lm("t-fixup") == ("t-fixup", "no-ln")
    assert split_lm("deepnet") == ("deepnet", "post-ln")
    assert split_lm("default@post-ln") == ("default", "post-ln")
    assert split_lm("gpt2") == ("gpt2", "gpt2")
    post = build("post-ln", 1, 16)
    assert any(
        layer.__class__.__name__ == "LayerNormalization" for layer in post.layers
    )
    bare = build("no-ln", 1, 16)
    assert not any("Normalization" in type(layer).__name__ for layer in bare.layers)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"schemes": ("dbn",)}, "unknown scheme 'dbn' for model='gpt'"),
        ({"schemes": ("gpt2@lstm",)}, "unknown scheme 'gpt2@lstm'"),
        ({"dataset": "digits"}, "Received: dataset='digits'"),
        ({"dataset": "missing.txt"}, "Received: dataset='missing.txt'"),
        ({"steps": 0}, "Argument `steps` must be a positive int. Received: steps=0"),
        ({"target_loss": -1.0}, "Received: target_loss=-1.0"),
    ],
)
def test_a_bad_language_model_setting_is_named(tmp_path, settings, message):
    config = gpt_config(logdir=str(tmp_path / "out"), **settings)
    for check in (check_config, compare_lm):
        with pytest.raises(ValueError, match=re.escape(message)):
            check(config)
    assert not (tmp_path / "out").exists()


def test_compare_gpt_quick_writes_its_table_figure_and_runs(tmp_path, capsys):
    logdir = tmp_path / "gpt"
    assert main(["compare", "--model", "gpt", "--quick", "--logdir", str(logdir)]) == 0
    table = (logdir / "summary.md").read_text()
    for scheme, model in [
        ("default", "gpt2"),
        ("zeros", "gpt2"),
        ("t-fixup", "no-ln"),
        ("deepnet", "post-ln"),
    ]:
        assert re.search(rf"\| {scheme} \| {model} \| \d", table), scheme
    assert (logdir / "summary.png").stat().st_size > 10_000
    summary = json.loads((logdir / "summary.json").read_text())
    zeros = next(s for s in summary["schemes"] if s["scheme"] == "zeros")
    assert zeros["initial_loss"][0] == pytest.approx(np.log(256), abs=1e-4)
    assert zeros["verdict"] == "symmetric"
    assert summary["corpus"].startswith("Python")
    assert list((logdir / "deepnet" / "seed0" / "train").iterdir())
    assert "| deepnet | post-ln |" in capsys.readouterr().out


def test_a_bad_option_of_compare_gpt_is_one_line_and_exit_2(tmp_path, capsys):
    argv = ["compare", "--model", "gpt", "--steps", "0", "--logdir", str(tmp_path)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.strip() == (
        "keras-weightinit: error: argument --steps: must be a positive int. Received: 0"
    )
