"""The benchmark scripts run against the current API, on tiny inputs.

They are not tests of speed, which is measured by running them
(`benchmarks/README.md`).
"""

import argparse
import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return (data.data[:200] / 16).astype("float32"), data.target[:200]


def test_bench_rbm_measures_every_column(digits):
    bench_rbm = _load("bench_rbm")
    x, _ = digits
    row = bench_rbm.bench("tiny", x, 8, 32, 1, 1, peak=100.0)
    rates = ("sk", "fit", "loop", "bound", "gflops_fit", "gflops_loop")
    assert all(np.isfinite(row[k]) and row[k] > 0 for k in rates), row
    assert row["ratio"] == pytest.approx(row["fit"] / row["sk"])
    assert row["frac_fit"] == pytest.approx(row["gflops_fit"] / 100.0)


def test_bench_rbm_compares_against_a_git_revision(digits):
    import keras

    bench_rbm = _load("bench_rbm")
    x = digits[0]
    rows = bench_rbm.against("HEAD", [("tiny", x, 8, 32, 1)], repeats=1)
    assert [r["case"] for r in rows] == ["tiny"]
    assert rows[0]["ours"] > 0 and rows[0]["theirs"] > 0
    assert rows[0]["ratio"] == rows[0]["ours"] / rows[0]["theirs"]
    # the revision's RBM class does not replace this tree's in the registry
    from keras_weightinit import RBM

    assert keras.saving.get_registered_object("keras_weightinit>RBM") is RBM


def test_bench_rbm_times_the_parts_of_a_step():
    bench_rbm = _load("bench_rbm")
    costs = bench_rbm.op_costs((4, 8), repeats=1, iterations=10)
    assert set(costs) == {
        "noise < mean, cast",
        "ceil(mean - noise)",
        "sigmoid",
        "subtraction",
    }
    assert all(c > 0 for c in costs.values())
    parts = bench_rbm.step_parts(4, 6, 5, steps=3, repeats=1)
    assert len(parts) == 4 and parts[0] == 1.0 and all(p > 0 for p in parts)


def test_bench_callbacks_times_the_hooks_inside_the_fit(digits, tmp_path):
    bench_callbacks = _load("bench_callbacks")
    x, y = digits
    seconds, hooks = bench_callbacks.timed_fit(x, y, 2, str(tmp_path))
    assert 0 < hooks < seconds
    assert (tmp_path / "gradients").is_dir()
    plain, none = bench_callbacks.timed_fit(x, y, 1, None)
    assert plain > 0 and none == 0


def test_diagnose_cases_tells_a_net_that_trains_from_one_that_does_not(capsys):
    cases = _load("diagnose_cases")
    rows = cases.main(["--quick"])
    verdicts = {row["case"]: row["verdict"] for row in rows}
    assert verdicts == {"mlp20 he": "healthy", "mlp20 lecun": "vanishing"}
    assert "| mlp20 he | healthy |" in capsys.readouterr().out


def test_bench_initializers_measures_every_ratio():
    bench = _load("bench_initializers")
    result = bench.main(["--quick"])
    assert [row["case"].split()[0] for row in result["draws"]] == [
        "HeNormal",
        "XavierUniform",
        "Orthogonal",
    ]
    assert all(row["ours"] > 0 and row["keras"] > 0 for row in result["draws"])
    assert all(row["bytes"] < 100_000 for row in result["graphs"])
    assert result["fit"]["ours"]["seconds"] > 0


def test_bench_initialize_measures_time_and_memory():
    bench = _load("bench_initialize")
    rows = bench.main(["--quick", "--backend", "tensorflow"])
    rows.append(bench.child("torch", 1.0, 1, quick=True))  # a fresh process
    assert [row["backend"] for row in rows] == ["tensorflow", "torch"]
    for row in rows:
        assert row["params"] == 2 * (64 * 64 + 64) + 64 * 10 + 10
        assert row["build_s"] > 0 and row["initialize_s"] > 0
        assert row["time_ratio"] == pytest.approx(row["initialize_s"] / row["build_s"])
        assert row["growth_gb"] >= 0
    assert "| tensorflow | cpu | 8,970 |" in bench.table(rows)


class _Parsed(Exception):
    """Raised in place of a benchmark's run once its arguments are parsed."""


def _parsed(monkeypatch, line):
    """The namespace the script of command `line` parses from it; runs nothing."""
    module = _load(Path(line[1]).stem)
    found = []
    parse = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        found.append(parse(self, args, namespace))
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    monkeypatch.setattr(sys, "argv", line[1:])
    try:
        module.main()
    except _Parsed:
        return found[0]
    except SystemExit as exit:  # argparse refused an argument
        pytest.fail(f"{line[1:]} refused (exit {exit.code})")
    finally:
        monkeypatch.undo()
    pytest.fail(f"{line[1:]} ran without parsing its arguments")


def test_bench_device_runs_each_script_in_the_mode_it_means(monkeypatch, capsys):
    bench = _load("bench_device")
    plan = {}
    for quick in (True, False):
        for script, _, _ in bench.BENCHMARKS:
            line = bench.command(script, "torch", quick)
            plan[script, quick] = vars(_parsed(monkeypatch, line))
    for quick in (True, False):
        assert plan["bench_initialize.py", quick]["backend"] == "torch"
        assert plan["bench_initialize.py", quick]["quick"] is quick
        assert plan["bench_initializers.py", quick]["quick"] is quick
        assert plan["bench_probe.py", quick]["small"] is quick
        rbm = plan["bench_rbm.py", quick]
        assert rbm["bare"] and rbm["backends"] == "torch"
        assert (rbm["epochs_digits"], rbm["repeats"]) == ((1, 1) if quick else (10, 5))
    text = bench.main(["--quick", "--dry-run", "--backends", "torch"])
    assert capsys.readouterr().out.strip() == text.strip()
    for script, _, _ in bench.BENCHMARKS:
        line = " ".join(bench.command(script, "torch", quick=True))
        assert f"### {script}\n\n`KERAS_BACKEND=torch {line}`" in text


@pytest.mark.slow
def test_bench_device_prints_a_ratio_per_case():
    bench = _load("bench_device")
    scripts = ["bench_initialize.py", "bench_initializers.py"]
    text = bench.main(["--quick", "--backends", "torch", "--only", *scripts])
    assert "failed" not in text and "timed out" not in text, text
    rows = re.findall(r"^\| (.+?) \|.* (\d+\.\d\d)x[ |(]", text, re.MULTILINE)
    cases = [case for case, _ in rows]
    assert cases[0] == "torch" and cases[1:4] == [
        "HeNormal (64, 64)",
        "XavierUniform (64, 64)",
        "Orthogonal (32, 32)",
    ], text
    assert cases[4:] == ["time, s", "peak memory growth, MB"], text
    assert all(float(ratio) > 0 for _, ratio in rows)
