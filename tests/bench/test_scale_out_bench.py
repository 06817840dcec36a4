"""The scale-out benchmark (bench/scale_out.py): its shard split, its runner at a tiny size, its section of the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.common import Result
from bench.scale_out import split
from tests.support.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "bench" / "scale_out.py"


def test_the_shards_are_split_evenly_and_each_is_owned_once() -> None:
    assert [len(r) for r in split(1)] == [16]
    assert [len(r) for r in split(2)] == [8, 8]
    assert [len(r) for r in split(3)] == [6, 5, 5]
    assert sorted(shard for r in split(3) for shard in r) == list(range(16))


@pytest.mark.slow
@pytest.mark.postgres
def test_one_and_two_replicas_run_every_execution_and_report_throughput_ratio_and_cpu_per_process(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    out = tmp_path / "scale-out.json"
    command = [sys.executable, str(RUNNER), "--quick", "--replicas", "1", "2", "--out", str(out)]
    finished = subprocess.run(
        [*command, "--postgres-url", postgres_server.admin_url],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    result = json.loads(out.read_text())

    assert result["scenario"] == "scale-out" and result["unsupported"] is None
    figures: dict[str, Any] = result["figures"]
    assert figures["replicas"] == [1, 2]
    assert figures["n1_steps_per_s"] > 0 and figures["n2_steps_per_s"] > 0
    assert figures["n1_ratio"] == 1.0 and figures["n2_ratio"] > 0
    one, two = figures["per_replicas"]["1"], figures["per_replicas"]["2"]
    assert two["shards"] == [8, 8]
    # Nothing is forwarded with one replica; with two, the starts through replica 0 for replica 1's shards are.
    assert one["forwarded"]["forwarded"] == 0
    assert 0 < two["forwarded"]["forwarded"] < figures["executions"]
    assert two["forwarded"]["start_p50_forwarded_ms"] > 0
    assert two["idle_hop_p50_ms"]["start_forwarded"] > 0 and two["idle_hop_p50_ms"]["get_local"] > 0
    assert one["idle_hop_p50_ms"]["start_forwarded"] is None and one["idle_hop_p50_ms"]["probes"] == 10
    cpu = two["direct"]["cpu_ms_per_step"]
    assert set(cpu) == {"engine 0", "engine 1", "worker 0", "worker 1", "postgres", "clients"}
    assert all(cpu[name] > 0 for name in ("engine 0", "engine 1", "postgres")), cpu
    assert two["direct"]["cpu_ms_per_step_total"] >= sum(cpu.values()) - 0.01


def test_the_report_shows_a_row_per_number_of_replicas_with_cpu_per_step(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from bench.report import write_report

    def run(steps_per_s: float, engines: int) -> dict[str, Any]:
        cpu = {f"engine {i}": 1.0 for i in range(engines)} | {"worker 0": 0.4, "postgres": 0.3, "clients": 0.1}
        return {
            "steps_per_s": steps_per_s,
            "ratio": round(steps_per_s / 500, 2),
            "wall_s": 4.0,
            "cpu_ms_per_step": cpu,
            "cpu_ms_per_step_total": sum(cpu.values()),
            "start_p50_local_ms": 3.0,
            "start_p50_forwarded_ms": 4.5 if engines > 1 else None,
            "forwarded": 100.0 if engines > 1 else 0.0,
            "cost_pct": 2.0,
        }

    def hop(engines: int) -> dict[str, Any]:
        return {"start_local": 2.0, "start_forwarded": 3.25 if engines > 1 else None, "get_local": 0.5}

    per: dict[str, dict[str, Any]] = {
        str(n): {
            "direct": run(500 - 10 * n, n),
            "forwarded": run(480, n) | {"extra_cpu_ms_per_forwarded": 2.5 if n > 1 else None},
            "idle_hop_p50_ms": hop(n),
            "shards": [16 // n] * n,
        }
        for n in (1, 2)
    }
    figures = {"n1_steps_per_s": 490.0, "n2_steps_per_s": 480.0, "n2_ratio": 0.98, "executions": 200, "steps": 10}
    result = Result("Cerebelum", "v", "PostgreSQL (fsync on)", "scale-out", {**figures, "per_replicas": per}, "n")
    doc = tmp_path / "benchmarks.md"
    write_report([result], doc, quick=True, command="test", wall_s=1.0)

    text = doc.read_text()
    assert "## Scale-out on PostgreSQL" in text
    assert (
        "| 1 | 16 | 490 | 0.98 | 4.00 | 1.00 | 0.40 | 0.30 | 0.10 | 1.80 | 480 | 2.00 | 0 of 200 | - | 2.00 / - |"
        in text
    )
    row = "| 2 | 8+8 | 480 | 0.96 | 4.00 | 1.00 + 1.00 | 0.40 | 0.30 | 0.10 | 2.80 | 480 | 2.00 | 100 of 200 | 2.50 |"
    assert f"{row} 2.00 / 3.25 | 0.50 / - |" in text
    assert "the replicas, the workers and PostgreSQL share" in text
