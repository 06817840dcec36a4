"""`scripts/test --fast`: the checks without the slow preparation, then the unit tests or the paths given."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SLOW_PREPARATION = ("PostgreSQL", "control plane", "a real node", "temporal CLI", "== tests\n")
CHECKS = ("== generated code and the lock are up to date", "== lint, format, types, layers", "== tests (fast lane)")


def _fast(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/test", "--fast", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.timeout(600)
def test_the_fast_lane_runs_the_checks_then_only_the_unit_tests_without_the_slow_preparation() -> None:
    out = _fast("--collect-only", "-q")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for check in CHECKS:
        assert check in out.stdout
    for slow in SLOW_PREPARATION:
        assert slow not in out.stdout
    collected = [line for line in out.stdout.splitlines() if "::" in line]
    assert collected
    assert all(line.startswith("tests/unit/") for line in collected), [
        line for line in collected if not line.startswith("tests/unit/")
    ][:5]


@pytest.mark.timeout(600)
def test_the_fast_lane_runs_only_the_test_it_is_given() -> None:
    test = "tests/unit/engine/test_decide.py::test_sequential_steps_run_in_order_and_the_last_output_is_the_result"
    out = _fast("-q", test)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "1 passed" in out.stdout
