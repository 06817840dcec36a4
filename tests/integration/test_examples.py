"""The README's demo runs as users run it: real engine, real worker, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_the_provision_example_runs_to_succeeded_and_prints_its_history() -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "provision" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Succeeded" in out
    for event in ("StepFailed", "StepRetryAfter", "ApprovalGranted", "SleepStarted", "JumpTaken", "ExecutionSucceeded"):
        assert event in out, f"{event} missing from the printed history"
    assert "send_welcome_email" not in out.split("$ cerebelum history", 1)[1]


def test_the_readme_shows_the_workflow_file_it_names_exactly_as_it_is() -> None:
    readme = (ROOT / "README.md").read_text()
    named = "The workflow (`examples/provision/workflow.yaml`):"
    assert named in readme
    block = readme.split(named, 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert block == (ROOT / "examples" / "provision" / "workflow.yaml").read_text()
