"""The DBOS peer runner works end to end in --quick mode and writes the benchmark result contract.

It runs as the benchmark suite runs it, a subprocess per scenario; speed is not asserted, only that
every figure the contract names is there and is a positive number, and that no DBOS process or temp
file is left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("dbos", reason="DBOS comes with the bench extra: pip install -e '.[bench]'")

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "bench" / "peers" / "dbos_peer.py"
FIGURES = {
    "latency": {"p50_ms", "p99_ms", "samples"},
    "throughput": {"steps_per_s", "wall_steps_per_s", "executions", "steps", "workers"},
}
# DBOS records step completions in whole milliseconds, so on a fast disk a step-to-step gap can be a
# true 0 ms; the in-process timing of the same gaps has the resolution to be positive.
MAY_BE_ZERO = {"p50_ms", "p99_ms"}
POSITIVE_EXTRAS = {"latency": {"inprocess_p50_ms"}, "throughput": set()}
QUICK_SIZES = {  # bench/README.md's quick sizes: 20 steps (19 gaps); 20 executions x 3 steps on 2 workers
    "latency": {"samples": 19},
    "throughput": {"executions": 20, "steps": 3, "total_steps": 60, "workers": 2},
}


def run_quick(scenario: str, out: Path, scratch: Path) -> dict[str, Any]:
    """Run the runner with its temp files under `scratch`, so what it leaves behind can be told apart."""
    completed = subprocess.run(
        [sys.executable, str(RUNNER), "--scenario", scenario, "--out", str(out), "--quick", "--store", "sqlite"],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def processes_using(scratch: Path) -> list[str]:
    """Command lines naming `scratch`: the runner's DBOS children carry their temp paths in them."""
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in listing.splitlines() if str(scratch) in line]


@pytest.mark.parametrize("scenario", sorted(FIGURES))
def test_quick_run_writes_every_contract_figure_as_a_positive_number(scenario: str, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = run_quick(scenario, tmp_path / f"{scenario}.json", scratch)

    assert {"system", "version", "store", "scenario", "figures", "notes", "unsupported"} <= result.keys()
    assert result["system"] == "DBOS Transact"
    assert result["scenario"] == scenario
    assert result["store"] == "SQLite (file)"
    assert result["unsupported"] is None
    assert "dbos 3.4.0" in result["version"]
    assert result["notes"]
    figures = result["figures"]
    assert FIGURES[scenario] | POSITIVE_EXTRAS[scenario] <= figures.keys()
    for name in FIGURES[scenario] | POSITIVE_EXTRAS[scenario]:
        assert isinstance(figures[name], int | float), (name, figures[name])
        assert figures[name] >= 0 if name in MAY_BE_ZERO else figures[name] > 0, (name, figures[name])
    if scenario == "latency":
        assert figures["p99_ms"] >= figures["p50_ms"]
    assert {name: figures[name] for name in QUICK_SIZES[scenario]} == QUICK_SIZES[scenario]
    assert processes_using(scratch) == []
    assert list(scratch.iterdir()) == []  # the SQLite files and child logs are removed
