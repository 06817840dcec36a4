"""`mypy --strict` (scripts/test) covers every Python file of the project, the tests and examples included."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_tracked_python_file_tests_and_examples_included_is_under_mypy_s_files() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    checked = tuple(folder.rstrip("/") + "/" for folder in config["files"])
    assert {"tests/", "examples/"} <= set(checked)
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "bench/run.py" in tracked and "tests/conftest.py" in tracked and "examples/provision/worker.py" in tracked
    unchecked = [path for path in tracked if not path.startswith(checked)]
    assert unchecked == []


def test_no_mypy_override_silences_the_tests() -> None:
    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"].get("overrides", [])
    modules = [m for o in overrides for m in ([o["module"]] if isinstance(o["module"], str) else o["module"])]
    assert [m for m in modules if m.startswith(("tests", "examples"))] == []
