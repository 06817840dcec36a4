"""Chaos on SQLite: the engine SIGKILLed at random ten times and more, workers too; nothing is lost.

A CI-sized run: 200 executions of the mixed workflow (workload.py), 10 engine kills, 6 worker
kills, in about a minute. ``python -m tests.chaos.long_run`` is the long run. ``CHAOS_SEED``
replays a run's plan.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .driver import ChaosPlan, ChaosReport, ChaosRun, DevBackend, seed_from_environment

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(600)]


def test_two_hundred_executions_reach_their_fates_while_the_engine_and_workers_are_killed_at_random(
    tmp_path: Path, chaos_reports: list[ChaosReport]
) -> None:
    plan = ChaosPlan(seed=seed_from_environment(), executions=200, engine_kills=10, worker_kills=6)
    backend = DevBackend(database_url=f"sqlite:///{tmp_path / 'engine.db'}", workdir=tmp_path)

    report = ChaosRun(plan, backend, tmp_path).run()
    chaos_reports.append(report)

    assert report.summary["engine_kills"] == 10
    assert report.summary["worker_kills"] == 6
    assert not report.problems, "\n".join(report.problems[:60])
    assert report.summary["phases"].keys() == {"Succeeded", "Failed", "Cancelled"}
