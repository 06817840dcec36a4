"""`mypy --strict` (scripts/test) covers every Python file of the project but the tests and examples."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The tests are not type-checked yet; the examples are samples the docs show as a user writes them.
NOT_CHECKED = ("tests/", "examples/")


def test_every_python_file_outside_the_tests_and_examples_is_under_mypy_s_files() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    checked = tuple(folder.rstrip("/") + "/" for folder in config["files"])
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "bench/run.py" in tracked
    unchecked = [path for path in tracked if not path.startswith(checked + NOT_CHECKED)]
    assert unchecked == []
