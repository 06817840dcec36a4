"""The Kubernetes-mode scale-out benchmark (bench/kubernetes_scale_out.py): when the shard Leases count as
split, what the workers are given, its runner at the quick size with real processes, its section of the report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.common import Result
from bench.kubernetes_scale_out import expected_split, is_split, worker_address
from tests.support.control_plane import ControlPlaneError, ensure_binaries
from tests.support.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "bench" / "kubernetes_scale_out.py"


def test_the_leases_count_as_split_only_when_every_replica_holds_its_even_share() -> None:
    assert expected_split(1) == [16] and expected_split(2) == [8, 8] and expected_split(3) == [6, 5, 5]
    two = ["replica-0", "replica-1"]
    even = {f"g-shard-{n}": two[n % 2] for n in range(16)}
    assert is_split(even, two)
    assert not is_split({**even, "g-shard-0": "replica-1"}, two)  # 7 and 9
    assert not is_split({**even, "g-shard-0": ""}, two)  # one Lease not held
    assert not is_split(dict.fromkeys(even, "replica-0"), two)  # the second has not joined
    assert not is_split(dict(list(even.items())[:15]), two)  # a Lease missing
    three = ["replica-0", "replica-1", "replica-2"]
    assert is_split({f"g-shard-{n}": three[0 if n < 6 else 1 if n < 11 else 2] for n in range(16)}, three)


def test_workers_get_the_list_of_replicas() -> None:
    assert worker_address("per-replica", ["127.0.0.1:1", "127.0.0.1:2"]) == "127.0.0.1:1,127.0.0.1:2"


def _require_control_plane() -> None:
    problem = "kubectl is not on PATH" if shutil.which("kubectl") is None else None
    if problem is None:
        try:
            ensure_binaries()
        except ControlPlaneError as error:
            problem = f"no control plane binaries: {error}"
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)


@pytest.mark.slow
@pytest.mark.kube
@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_one_and_two_operator_replicas_run_every_execution_and_report_ratio_writes_and_cpu_per_process(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    _require_control_plane()
    out = tmp_path / "kubernetes-scale-out.json"
    command = [sys.executable, str(RUNNER), "--quick", "--replicas", "1", "2", "--out", str(out)]
    finished = subprocess.run(
        [*command, "--postgres-url", postgres_server.admin_url],
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
        cwd=ROOT,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-5000:]
    result = json.loads(out.read_text())

    assert result["scenario"] == "kubernetes-scale-out" and result["unsupported"] is None
    assert result["store"].startswith("PostgreSQL") and "kube-apiserver v" in result["version"]
    figures: dict[str, Any] = result["figures"]
    assert figures["replicas"] == [1, 2] and figures["channels"] == ["per-replica"]
    assert (figures["executions"], figures["steps"], figures["workers"]) == (20, 3, 2)  # the kubernetes quick size
    assert figures["n1_steps_per_s"] > 0 and figures["n2_steps_per_s"] > 0
    assert figures["n1_ratio"] == 1.0
    for channel in ("per-replica",):
        one, two = figures["per_replicas"]["1"][channel], figures["per_replicas"]["2"][channel]
        assert one["shards"] == [16] and one["executions_run"] == [20]
        assert two["shards"] == [8, 8] and sum(two["executions_run"]) == 20
        assert all(count > 0 for count in two["executions_run"]), two  # each replica ran its own
        # Every Execution's status reached the API: at least one status write each, through the audit log.
        assert two["status_writes"] >= 20 and two["api_writes_per_execution"] >= 1
        assert isinstance(two["lease_writes"], int)  # renewals in the run's window: none in a run this short
        cpu = two["cpu_ms_per_step"]
        assert {"operator 0", "operator 1", "workers", "kube-apiserver", "etcd", "postgres", "runner"} <= set(cpu)
        assert all(cpu[name] > 0 for name in ("operator 0", "operator 1", "kube-apiserver", "postgres")), cpu


def test_the_report_shows_a_row_per_number_of_replicas_and_channel_with_cpu_per_step(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from bench.report import write_report

    def run(steps_per_s: float, replicas: int, channel: str) -> dict[str, Any]:
        cpu = {f"operator {i}": 2.0 for i in range(replicas)}
        cpu |= {"workers": 0.5, "kube-apiserver": 3.0, "etcd": 1.0, "postgres": 0.25, "runner": 0.5, "other": 9.0}
        return {
            "steps_per_s": steps_per_s,
            "ratio": round(steps_per_s / 200, 2),
            "wall_s": 10.0,
            "api_writes_per_execution": 3.1,
            "lease_writes_per_s": 8.0 if channel else 0.0,
            "shards": [16 // replicas] * replicas,
            "executions_run": [200 // replicas] * replicas,
            "cpu_ms_per_step": cpu,
            "cpu_ms_per_step_total": sum(v for k, v in cpu.items() if k != "other"),
            "machine_busy_pct": 95.0,
        }

    per = {str(n): {channel: run(200.0 + n, n, channel) for channel in ("per-replica",)} for n in (1, 2)}
    figures = {"n1_steps_per_s": 201.0, "n2_steps_per_s": 202.0, "n2_ratio": 1.01, "executions": 200, "steps": 10}
    result = Result(
        "Cerebelum (Kubernetes operator)",
        "v",
        "PostgreSQL (fsync on)",
        "kubernetes-scale-out",
        {**figures, "per_replicas": per},
        "n",
    )
    doc = tmp_path / "benchmarks.md"
    write_report([result], doc, quick=True, command="test", wall_s=1.0)

    text = doc.read_text()
    assert "## Kubernetes mode: scale-out on PostgreSQL" in text
    assert (
        "| 1 | per-replica | 16 | 200 | 201.0 | 1.00 | 10.0 | 3.10 | 8.00 | 2.00 | 0.50 | 3.00 | 1.00 | 0.25 |" in text
    )
    assert "| 2 | per-replica | 8+8 | 100+100 | 202.0 | 1.01 | 10.0 | 3.10 | 8.00 | 2.00 + 2.00 | 0.50 |" in text
    assert "| 0.50 | 9.25 | 9.00 | 95.0 |" in text  # runner, total without the other processes, them, machine busy
