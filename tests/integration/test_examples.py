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
