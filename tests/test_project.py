"""The project's promises about itself: README commands, CI, the public API."""

import re
from pathlib import Path

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
