"""The Kubernetes-mode runner works end to end and writes the bench/README.md result contract.

It runs the real runner (etcd + kube-apiserver, the operator as its ServiceAccount, no-op worker
processes) in quick mode as a subprocess; it checks the shape and sanity of the figures, never
how fast they are.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.control_plane import ControlPlaneError, ensure_binaries

pytestmark = [pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "bench" / "kubernetes_runner.py"
CONTRACT_KEYS = {"system", "version", "store", "scenario", "figures", "notes", "unsupported"}
CONTRACT_FIGURES = {"steps_per_s", "api_writes_per_s", "api_writes_per_execution", "executions", "steps"}


def _unavailable(reason: str) -> None:
    """Skip locally; on CI a missing control plane is a failure, not a quiet skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _require_control_plane() -> None:
    """What the runner needs, checked up front (and built or found cached) before it is timed."""
    if shutil.which("kubectl") is None:
        _unavailable("kubectl is not on PATH")
    try:
        ensure_binaries()
    except ControlPlaneError as e:
        _unavailable(f"no control plane binaries: {e}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_quick_run_through_the_operator_writes_the_contract(tmp_path: Path) -> None:
    _require_control_plane()
    out = tmp_path / "kubernetes.json"
    completed = subprocess.run(
        [sys.executable, str(RUNNER), "--scenario", "kubernetes", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    assert completed.returncode == 0, f"runner failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-5000:]}"
    result: dict[str, Any] = json.loads(out.read_text())

    assert set(result) == CONTRACT_KEYS
    assert result["scenario"] == "kubernetes"
    assert result["unsupported"] is None
    assert result["store"] == "SQLite (file)"
    assert "Cerebelum" in result["system"]
    assert "kube-apiserver v" in result["version"]
    assert isinstance(result["notes"], str) and result["notes"]

    figures = result["figures"]
    assert set(figures) >= CONTRACT_FIGURES
    for name, value in figures.items():
        assert _number(value), (name, value)
        assert value >= 0, (name, value)
    for name in CONTRACT_FIGURES | {"wall_steps_per_s", "status_writes", "apply_s", "engine_s"}:
        assert figures[name] > 0, (name, figures[name])

    # The quick size, every step done, and the writes adding up to their parts.
    assert figures["executions"] == 20
    assert figures["steps"] == 3  # each, as bench/report.py shows it
    assert figures["total_steps"] == 60
    assert figures["workers"] == 2
    assert figures["api_writes"] >= figures["status_writes"] + figures["object_patches"] + figures["events_written"]
    assert figures["api_writes_per_execution"] == pytest.approx(figures["api_writes"] / 20, abs=0.01)
    # A success posts no Event (the status says it); every Execution got at least its final status write.
    assert figures["events_written"] == 0
    assert figures["status_writes"] >= 20
    assert figures["wall_s"] >= figures["engine_s"]

    # Nothing left behind: every process of the run had its work dir in its command line.
    work_dir = re.search(r"work dir (\S+)", completed.stderr)
    assert work_dir is not None, completed.stderr[-2000:]
    assert not Path(work_dir[1]).exists()
    leftovers = subprocess.run(["pgrep", "-af", work_dir[1]], capture_output=True, text=True, check=False)
    assert leftovers.stdout.strip() == "", leftovers.stdout
