"""docs/testing.md shows the files under examples/testing/ as they are, and its commands pass."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "testing.md"
SAMPLES = ROOT / "examples" / "testing"


def python_block_after(label: str) -> str:
    section = DOC.read_text().split(label, 1)[1]
    match = re.match(r"\s*```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no python block right after {label!r}"
    return match.group(1)


def shell_commands() -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", DOC.read_text(), re.DOTALL)


@pytest.mark.parametrize("name", ["orders.py", "test_orders_steps.py", "test_orders_end_to_end.py"])
def test_the_doc_shows_each_sample_file_exactly_as_it_is(name: str) -> None:
    assert python_block_after(f"(`examples/testing/{name}`):") == (SAMPLES / name).read_text()


def test_the_doc_shows_every_sample_file() -> None:
    shown = set(re.findall(r"\(`examples/testing/([\w.]+)`\):", DOC.read_text()))

    assert shown == {path.name for path in SAMPLES.glob("*.py")}


def run_as_written(command: str) -> subprocess.CompletedProcess[str]:
    assert command.startswith("python -m pytest "), command
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, *command.split()[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_unit_test_command_of_the_doc_passes() -> None:
    command = shell_commands()[0]
    assert command == "python -m pytest examples/testing/test_orders_steps.py"

    ran = run_as_written(command)

    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "6 passed" in ran.stdout


@pytest.mark.slow
def test_the_end_to_end_command_of_the_doc_passes_against_cerebelum_dev() -> None:
    command = shell_commands()[1]
    assert command == "python -m pytest examples/testing/test_orders_end_to_end.py"

    ran = run_as_written(command)

    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "1 passed" in ran.stdout
