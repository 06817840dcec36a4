"""Chaos across three operator replicas that share the shards through Leases while they are killed.

Three `cerebelum operator --shard-group` processes on the real test kube-apiserver (the chart's RBAC) and one
PostgreSQL store. Executions are Execution objects, decisions Approvals, cancellations deletions;
each replica kill moves its shards to the others once its Leases run out, and back when it
returns. Besides the history and ledger invariants of every chaos run, the Kubernetes side must
agree with the store (`OperatorBackend.final_checks`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.control_plane import ControlPlane
from tests.support.postgres import PostgresServer

from .driver import ChaosPlan, ChaosReport, ChaosRun, seed_from_environment
from .sharded_operator_backend import ShardedOperatorBackend

pytestmark = [pytest.mark.slow, pytest.mark.kube, pytest.mark.postgres, pytest.mark.chaos, pytest.mark.timeout(900)]


def test_executions_reach_their_fates_and_their_objects_show_it_while_operator_replicas_are_killed(
    control_plane: ControlPlane,
    crds: list[str],
    operator_rbac: None,
    namespace: str,
    tmp_path: Path,
    private_postgres: PostgresServer,
    chaos_reports: list[ChaosReport],
) -> None:
    plan = ChaosPlan(seed=seed_from_environment(), executions=60, engine_kills=5, worker_kills=3, start_window_s=30)
    backend = ShardedOperatorBackend(
        control_plane=control_plane,
        namespace=namespace,
        workdir=tmp_path,
        database_url=private_postgres.create_database("chaos"),
        name="sharded-operator-3/postgresql",
    )

    report = ChaosRun(plan, backend, tmp_path).run()
    chaos_reports.append(report)

    assert report.summary["engine_kills"] == 5
    assert len(backend.kills_by_replica) >= 2  # more than one replica's shards moved
    assert not report.problems, "\n".join(report.problems[:60])
