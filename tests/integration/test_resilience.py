"""Kill the engine or a worker at the worst moments: every execution still finishes, nothing lost."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from cerebelum import Client
from tests.support.processes import EngineProcess, WorkerProcess
from tests.support.waiting import wait_until

from .conftest import read_ledger

pytestmark = pytest.mark.slow


def test_an_execution_sleeping_when_the_engine_is_killed_finishes_after_its_wake_time(
    engine: EngineProcess, start_worker: Callable[[], WorkerProcess], client: Client, ledger: Path
) -> None:
    start_worker()
    client.apply_workflow("napper", {"taskQueue": "test", "timeline": ["a", "nap", "after"]})
    execution = client.start("napper", {"sleep_ms": 3000})
    wait_until(lambda: client.get(execution.id).phase == "Sleeping", within=30, what="the sleep")
    wake_at = client.get(execution.id).wake_at
    assert wake_at is not None
    engine.restart()
    final = client.wait(execution.id, timeout=60)
    assert final.phase == "Succeeded", final.error
    runs = [r for r in read_ledger(ledger) if r["execution"] == execution.id]
    assert Counter(r["step"] for r in runs) == {"a": 1, "nap": 1, "after": 1}
    after = next(r for r in runs if r["step"] == "after")
    assert after["at"] >= wake_at.timestamp()


def test_a_worker_killed_mid_step_loses_its_lease_and_another_worker_finishes_the_step(
    engine: EngineProcess, start_worker: Callable[[], WorkerProcess], client: Client, ledger: Path
) -> None:
    first = start_worker()
    client.apply_workflow(
        "slowpoke",
        {
            "taskQueue": "test",
            "timeline": ["slow"],
            "defaults": {"lease": "2s", "retry": {"maxAttempts": 3, "initialInterval": "100ms"}},
        },
    )
    execution = client.start("slowpoke", {"hold_s": 1.5})
    wait_until(lambda: any(r["event"] == "start" for r in read_ledger(ledger)), within=30, what="the step to start")
    first.kill()
    second = start_worker()
    final = client.wait(execution.id, timeout=60)
    assert final.phase == "Succeeded", final.error
    assert second.process is not None
    assert final.output["pid"] == second.process.pid
    history = client.history(execution.id)
    failed = [e for e in history if e.type == "StepFailed"]
    assert [e.data["error_type"] for e in failed] == ["LeaseExpired"]


def test_an_engine_killed_between_steps_again_and_again_still_completes_with_a_gapless_history(
    engine: EngineProcess, start_worker: Callable[[], WorkerProcess], client: Client, ledger: Path
) -> None:
    start_worker()
    steps = [f"s{i}" for i in range(1, 13)]
    client.apply_workflow("marathon", {"taskQueue": "test", "timeline": steps, "defaults": {"lease": "3s"}})
    executions = [client.start("marathon", {}).id for _ in range(4)]
    kills = 0
    deadline = time.monotonic() + 90
    while kills < 5 and time.monotonic() < deadline:
        time.sleep(0.15)
        engine.restart()
        kills += 1
    finals = [client.wait(execution_id, timeout=90) for execution_id in executions]
    assert kills == 5
    for final in finals:
        assert final.phase == "Succeeded", final.error
        history = client.history(final.id)
        assert [e.seq for e in history] == list(range(1, len(history) + 1))
        completions = Counter((e.data["step"], e.data["attempt"]) for e in history if e.type == "StepCompleted")
        assert set(completions.values()) == {1}
        assert {step for step, _ in completions} == set(steps)


def test_an_approval_given_after_an_engine_restart_continues_the_execution(
    engine: EngineProcess, start_worker: Callable[[], WorkerProcess], client: Client
) -> None:
    start_worker()
    client.apply_workflow(
        "gated",
        {"taskQueue": "test", "timeline": ["a", "gate", "after"], "steps": {"gate": {"approval": {"timeout": "1h"}}}},
    )
    execution = client.start("gated", {})
    wait_until(lambda: client.get(execution.id).phase == "WaitingForApproval", within=30, what="the approval")
    engine.restart()
    client.approve(execution.id, "gate", approver="alice", payload={"ticket": "CHG-1"})
    final = client.wait(execution.id, timeout=60)
    assert final.phase == "Succeeded", final.error
    granted = [e for e in client.history(execution.id) if e.type == "ApprovalGranted"]
    assert granted[0].data["approver"] == "alice"
