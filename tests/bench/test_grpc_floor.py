"""The gRPC echo floor runner works end to end in --quick mode and writes the benchmark result contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "bench" / "peers" / "grpc_floor.py"


def run_quick(scenario: str, out: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(RUNNER), "--scenario", scenario, "--out", str(out), "--quick"],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_latency_reports_one_and_two_round_trips_as_positive_milliseconds(tmp_path: Path) -> None:
    result = run_quick("latency", tmp_path / "latency.json")

    assert {"system", "version", "store", "scenario", "figures", "notes", "unsupported"} <= result.keys()
    assert result["scenario"] == "latency"
    assert result["unsupported"] is None
    figures = result["figures"]
    for name in ("p50_ms", "p99_ms", "samples", "two_round_trips_p50_ms"):
        assert isinstance(figures[name], int | float) and figures[name] > 0, (name, figures[name])
    assert figures["samples"] == 200
    assert figures["p99_ms"] >= figures["p50_ms"]


def test_an_engine_scenario_is_unsupported_with_a_reason_and_no_figures(tmp_path: Path) -> None:
    result = run_quick("recovery", tmp_path / "recovery.json")

    assert result["figures"] == {}
    assert "a floor, not an engine" in result["unsupported"]
