"""Compensation and finally steps with real worker processes, SQLite and PostgreSQL (issue 16).

The engine is SIGKILLed while a compensation runs: the ending resumes from the history, and no
compensation or finally step that completed runs again.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebelum import Client
from tests.support.processes import EngineProcess, WorkerPool, run_cli
from tests.support.waiting import wait_until

from .conftest import read_ledger

pytestmark = pytest.mark.slow

WORKER = Path(__file__).parent / "workers" / "saga_worker.py"
SAGA = {
    "taskQueue": "test",
    "timeline": ["book", "pay"],
    "steps": {"book": {"compensate": "unbook"}, "unbook": {"heartbeatTimeout": "20s"}},
    "finally": ["notify"],
}


@pytest.fixture
def workers(engine: EngineProcess, ledger: Path, tmp_path: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(script=WORKER, address=engine.address, ledger=ledger, log_dir=tmp_path)
    yield pool
    pool.stop_all()


def runs_of(ledger: Path, execution: str) -> Counter[tuple[str, str]]:
    return Counter((r["step"], r["event"]) for r in read_ledger(ledger) if r["execution"] == execution)


def test_a_failed_payment_is_compensated_once_across_an_engine_sigkill_then_finally_runs(
    engine: EngineProcess, workers: WorkerPool, client: Client, ledger: Path
) -> None:
    workers.start()
    client.apply_workflow("saga", SAGA)
    client.start("saga", {"fail_pay": True, "hold_s": 5}, execution_id="s1")
    wait_until(lambda: runs_of(ledger, "s1")[("unbook", "start")] >= 1, within=60, what="the compensation")
    running = client.get("s1")
    assert (running.phase, running.ending, running.current_steps) == ("Running", "Failed", ("unbook",))
    described = run_cli(engine, "describe", "s1").stdout
    assert "Ending:    as Failed, once its compensation and finally steps ran" in described, described

    engine.restart()  # SIGKILL while the compensation runs
    finished = client.wait("s1", timeout=90)

    assert finished.phase == "Failed"
    assert (finished.error or "").startswith("step 'pay' failed: Declined: card declined")
    runs = runs_of(ledger, "s1")
    assert runs[("book", "run")] == 1 and runs[("pay", "run")] == 1
    assert runs[("unbook", "run")] == 1, "the compensation completed once"
    assert runs[("notify", "run")] == 1
    history = json.loads(run_cli(engine, "history", "s1", "-o", "json").stdout)
    completed = [e["data"]["step"] for e in history if e["type"] == "StepCompleted"]
    assert completed == ["book", "unbook", "notify"]
    ending = [e["data"] for e in history if e["type"] == "ExecutionEnding"]
    assert [(e["outcome"], e["handlers"], e["compensations"]) for e in ending] == [("Failed", ["unbook", "notify"], 1)]


def test_a_successful_execution_runs_only_its_finally_step(
    engine: EngineProcess, workers: WorkerPool, client: Client, ledger: Path
) -> None:
    workers.start()
    client.apply_workflow("saga", SAGA)
    client.start("saga", {}, execution_id="s2")
    finished = client.wait("s2", timeout=60)

    assert finished.phase == "Succeeded", finished.error
    assert finished.output == {"paid": True}
    runs = runs_of(ledger, "s2")
    assert runs[("notify", "run")] == 1 and runs[("unbook", "start")] == 0
