"""The project's promises about itself: README commands, CI, the public API."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import keras_weightinit as kwi

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert block and text.index(block.group(0)) < 400, "commands open the README"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_two_commands_and_ci_runs_the_test_one():
    install_and_run, install_and_test = _readme_commands()
    assert "keras-weightinit compare" in install_and_run
    assert "pytest" in install_and_test
    ci = (ROOT / ".ci" / "run").read_text()
    assert install_and_test in ci.splitlines()


def test_every_public_name_is_exported_and_documented():
    for name in kwi.__all__:
        obj = getattr(kwi, name)
        if name != "__version__":
            assert obj.__doc__ and "Example" in obj.__doc__, name


def test_the_readme_links_to_pages_that_exist():
    for page in ("README.md", *(p.name for p in (ROOT / "docs").glob("*.md"))):
        path = ROOT / page if page == "README.md" else ROOT / "docs" / page
        for target in re.findall(
            r"\]\(([^)#:]+\.(?:md|png|py))[^)]*\)", path.read_text()
        ):
            assert (path.parent / target).resolve().exists(), f"{page} -> {target}"


def test_ci_lints_and_checks_formatting():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "ruff check" in ci and "ruff format --check" in ci


def _python(script: str, *args: str, backend: str | None = None, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    if backend:
        env["KERAS_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=cwd,
    )


def test_every_public_name_imports_from_the_package():
    namespace = {}
    exec("from keras_weightinit import *", namespace)
    for name in kwi.__all__:
        assert namespace[name] is getattr(kwi, name), name
    assert set(kwi.__all__) <= set(dir(kwi))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kwi.nope  # noqa: B018


@pytest.mark.parametrize(
    "backend", ["jax", pytest.param("torch", marks=pytest.mark.slow)]
)
def test_the_package_imports_without_tensorflow_on_other_backends(backend):
    script = """
import sys
import keras_weightinit as kwi
print(kwi.HeNormal.__name__, "tensorflow" in sys.modules)
"""
    result = _python(script, backend=backend)
    assert result.stdout.split() == ["HeNormal", "False"], result.stderr[-2000:]


_SAVE = """
import sys
import keras
import keras_weightinit as kwi
model = keras.Sequential([
    keras.Input((4,)),
    keras.layers.Dense(8, kernel_initializer=kwi.HeNormal(seed=1)),
    keras.layers.Dense(8, kernel_initializer="keras_weightinit>XavierUniform"),
    kwi.MuReadout(3, kernel_initializer=kwi.Orthogonal(gain=2.0)),
])
model.save(sys.argv[1])
"""
_LOAD = """
import sys
import keras_weightinit
import keras
model = keras.saving.load_model(sys.argv[1])
for layer in model.layers:
    print(type(layer).__name__, type(layer.kernel_initializer).__name__)
print(keras.saving.get_registered_object("keras_weightinit>RBM").__name__)
"""


@pytest.mark.slow
def test_a_saved_model_loads_after_a_bare_import(tmp_path):
    path = str(tmp_path / "model.keras")
    saved = _python(_SAVE, path)
    assert saved.returncode == 0, saved.stderr[-2000:]
    loaded = _python(_LOAD, path)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.split() == [
        *("Dense", "HeNormal", "Dense", "XavierUniform"),
        *("MuReadout", "Orthogonal", "RBM"),
    ]
