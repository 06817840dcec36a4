"""Timer steps and the workflow timeout on a real engine, SQLite and PostgreSQL (issue 16).

Neither needs a worker: the engine's durable timers do the waiting, so a SIGKILLed engine that
comes back still wakes the execution.
"""

from __future__ import annotations

import json

import pytest

from cerebelum import Client
from tests.support.processes import EngineProcess, run_cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

# Long enough that the checks and the SIGKILL below come before it ends, even on a busy machine.
NAP = {"timeline": ["nap"], "steps": {"nap": {"timer": {"duration": "10s"}}}}
# An approval nobody gives: only the workflow's timeout can end it.
FORGOTTEN = {"timeline": ["gate"], "steps": {"gate": {"approval": {"timeout": "1h"}}}, "timeout": "3s"}


def test_a_timer_step_wakes_after_an_engine_sigkill_and_the_execution_succeeds(
    engine: EngineProcess, client: Client
) -> None:
    client.apply_workflow("nap", NAP)
    client.start("nap", {}, execution_id="t1")
    sleeping = client.get("t1")
    assert sleeping.phase == "Sleeping" and sleeping.wake_at is not None
    assert sleeping.step("nap") is not None and sleeping.step("nap").phase == "Sleeping"  # type: ignore[union-attr]

    engine.restart()  # SIGKILL while the timer is pending
    with Client(engine.address) as again:
        finished = again.wait("t1", timeout=60)

    assert finished.phase == "Succeeded", finished.error
    assert set(finished.output) == {"wokeAt"}
    assert finished.output["wokeAt"].endswith("Z")


def test_the_workflow_timeout_fails_a_stuck_execution_and_describe_shows_its_deadline(
    engine: EngineProcess, client: Client
) -> None:
    # A deadline far away to read in describe (a busy machine may take seconds to start the CLI),
    # and one that passes to fail an execution.
    client.apply_workflow("patient", {**FORGOTTEN, "timeout": "1h"})
    client.start("patient", {}, execution_id="p1")
    described = json.loads(run_cli(engine, "describe", "p1", "-o", "json").stdout)
    assert described["phase"] == "WaitingForApproval"
    assert described["deadline"].endswith("Z"), described
    client.apply_workflow("forgotten", FORGOTTEN)
    client.start("forgotten", {}, execution_id="f1")

    finished = client.wait("f1", timeout=60)
    assert finished.phase == "Failed"
    assert (finished.error or "").startswith("WorkflowTimeout: the execution did not finish within")
    assert finished.deadline is None, "an ended execution has no deadline left"
    wait_until(lambda: client.get("f1").pending_approvals == (), within=30, what="the approval withdrawn")
