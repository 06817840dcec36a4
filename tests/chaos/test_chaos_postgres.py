"""Chaos on PostgreSQL: engine and workers SIGKILLed, and the database server itself crashed and restarted.

A CI-sized run: 200 executions, 10 engine kills, 6 worker kills and 3 database restarts (an
immediate stop, which PostgreSQL recovers from as from a crash, then a start on the same data
directory and port). The server is this test's own, so the restarts disturb no other test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer

from .driver import ChaosPlan, ChaosReport, ChaosRun, DevBackend, seed_from_environment

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.chaos, pytest.mark.timeout(600)]


def test_two_hundred_executions_reach_their_fates_while_the_engine_workers_and_database_are_killed(
    tmp_path: Path, private_postgres: PostgresServer, chaos_reports: list[ChaosReport]
) -> None:
    plan = ChaosPlan(seed=seed_from_environment(), executions=200, engine_kills=10, worker_kills=6, database_restarts=3)
    url = private_postgres.create_database("chaos")
    backend = DevBackend(database_url=url, workdir=tmp_path, postgres=private_postgres)

    report = ChaosRun(plan, backend, tmp_path).run()
    chaos_reports.append(report)

    assert report.summary["engine_kills"] == 10
    assert report.summary["worker_kills"] == 6
    assert report.summary["database_restarts"] == 3
    assert not report.problems, "\n".join(report.problems[:60])
    assert report.summary["phases"].keys() == {"Succeeded", "Failed", "Cancelled"}
