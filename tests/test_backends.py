"""Every feature on TensorFlow, JAX and PyTorch (`tests/backend_checks.py`).

Keras fixes its backend when it is imported, so each backend runs the checks
in a subprocess of its own; each check compares with NumPy references.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECKS = Path(__file__).with_name("backend_checks.py")
BACKENDS = ("tensorflow", "jax", "torch")
NAMES = [
    "initializers_in_fit_seeds_and_save",
    "an_unbuilt_model_with_a_seed_generator",
    "initialize_redraws_with_the_fans",
    "lsuv_and_its_callback",
    "diagnose_gradients_equal_numpy",
    "gradient_histograms_log_numpy_gradients",
    "dbn_pretraining",
    "labels_are_checked_before_the_probe",
    "a_keras_hub_language_model_with_dict_inputs",
]
_RESULTS: dict = {}


def _results(backend: str, run_on_backend) -> dict:
    if backend not in _RESULTS:
        report = run_on_backend(backend, str(CHECKS))
        assert report["backend"] == backend
        _RESULTS[backend] = report["results"]
    return _RESULTS[backend]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_feature_works_on_every_backend(backend, name, run_on_backend):
    results = _results(backend, run_on_backend)
    assert set(results) == set(NAMES)  # no check left out
    assert results[name] == "ok", results[name]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_compare_runs_on_the_backend_it_is_asked_for(backend, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_weightinit",
            "compare",
            "--quick",
            "--schemes",
            "he,lsuv",
            "--backend",
            backend,
            "--logdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "tensorflow"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["backend"] == backend
    assert [s["scheme"] for s in summary["schemes"]] == ["he", "lsuv"]
