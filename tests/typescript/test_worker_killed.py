"""A TypeScript worker killed mid-step, and one asked to stop while a step runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cerebelum import Client
from tests.support.waiting import wait_until

from .conftest import Workers, event_types, read_ledger

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SLOWPOKE = {
    "taskQueue": "test",
    "timeline": ["slow"],
    "defaults": {"lease": "2s", "retry": {"maxAttempts": 3, "initialInterval": "100ms"}},
}


def test_a_typescript_worker_killed_mid_step_loses_its_lease_and_another_typescript_worker_completes_the_step(
    workers: Workers, client: Client, ledger: Path
) -> None:
    first = workers.typescript()
    client.apply_workflow("slowpoke", SLOWPOKE)
    execution = client.start("slowpoke", {"hold_s": 1.5})
    wait_until(lambda: any(r["event"] == "start" for r in read_ledger(ledger)), within=30, what="the step to start")
    first.kill()
    second = workers.typescript()
    final = client.wait(execution.id, timeout=60)
    assert final.phase == "Succeeded", final.error
    assert final.output == {"slow": "done", "pid": second.pid, "language": "typescript"}
    history = client.history(execution.id)
    outcomes = [(e.type, e.data.get("attempt"), e.data.get("error_type")) for e in history if e.type.startswith("Step")]
    assert [o for o in outcomes if o[0] in ("StepFailed", "StepCompleted")] == [
        ("StepFailed", 1, "LeaseExpired"),
        ("StepCompleted", 2, None),
    ]
    runs = [(r["event"], r["attempt"], r["pid"]) for r in read_ledger(ledger) if r["execution"] == execution.id]
    assert runs == [("start", 1, first.pid), ("start", 2, second.pid), ("run", 2, second.pid)]


def test_a_typescript_worker_sent_sigterm_mid_step_finishes_the_step_reports_it_and_exits(
    workers: Workers, client: Client, ledger: Path
) -> None:
    worker = workers.typescript()
    client.apply_workflow("slowpoke", SLOWPOKE)
    execution = client.start("slowpoke", {"hold_s": 1.5})
    wait_until(lambda: any(r["event"] == "start" for r in read_ledger(ledger)), within=30, what="the step to start")
    began = time.monotonic()
    assert worker.terminate(timeout=20) == 0, worker.log()
    assert time.monotonic() - began < 10
    final = client.wait(execution.id, timeout=30)
    assert final.phase == "Succeeded", final.error
    assert final.output["pid"] == worker.pid
    assert "StepFailed" not in event_types(client, execution.id)
    assert "SIGTERM: draining" in worker.log()
