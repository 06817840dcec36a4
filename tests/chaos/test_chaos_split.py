"""Chaos across three engines that balance the shards between them while they are killed at random.

A CI-sized run: 120 executions, 8 engine kills (each moving the victim's shards to the others and
back), 4 worker kills and one database restart (every engine loses its shards at once and they
share them out again), with the suite's invariants checked against the store and the ledger.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer

from .driver import ChaosPlan, ChaosReport, ChaosRun, seed_from_environment
from .split_backend import SplitBackend

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.chaos, pytest.mark.timeout(600)]


def test_executions_reach_their_fates_while_engines_sharing_the_shards_are_killed(
    tmp_path: Path, private_postgres: PostgresServer, chaos_reports: list[ChaosReport]
) -> None:
    plan = ChaosPlan(
        seed=seed_from_environment(),
        executions=120,
        engine_kills=8,
        worker_kills=4,
        database_restarts=1,
        workers=3,
        start_window_s=30.0,
    )
    url = private_postgres.create_database("chaos")
    backend = SplitBackend(database_url=url, workdir=tmp_path, postgres=private_postgres)

    report = ChaosRun(plan, backend, tmp_path).run()
    chaos_reports.append(report)

    assert report.summary["engine_kills"] == 8
    assert len(backend.kills_by_engine) >= 2  # more than one engine's shards moved
    assert report.summary["database_restarts"] == 1
    assert not report.problems, "\n".join(report.problems[:60])
    assert report.summary["phases"].keys() == {"Succeeded", "Failed", "Cancelled"}
