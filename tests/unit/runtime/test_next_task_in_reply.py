"""A completion that asks for its worker's next task (`poll_next`) gets the step its decision scheduled,
leased in the same commit, in its reply: one round trip per step. A real SQLite store, on a fake clock."""

from __future__ import annotations

import pytest

from cerebelum_operator.engine import ExecutionState, Reply
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.runtime import Dispatcher, EngineService

SPEC = {"taskQueue": "q", "timeline": ["a", "b"]}


async def test_the_next_step_is_leased_in_the_completion_s_commit_and_handed_back_with_it(
    engine: EngineService, dispatcher: Dispatcher
) -> None:
    await engine.start("w", {}, execution_id="e1")
    first = await dispatcher.poll(worker_id="w1", task_queue="q", steps=["a", "b"], wait_ms=0)
    assert first is not None and first.step == "a"

    standby = dispatcher.stand_by(worker_id="w1", task_queue="q", steps=["a", "b"])
    decision = await engine.handle("e1", cmd.TaskCompleted(first.token, cmd.OutcomeSuccess(1), worker_id="w1"))
    granted = dispatcher.collect(standby)

    assert decision.reply == Reply.ACCEPTED
    assert granted is not None and granted.step == "b"
    rows = {row.token: row for row in engine.db.store.load_tasks()}
    assert rows[granted.token].state == "leased" and rows[granted.token].worker_id == "w1"
    kinds = [r.event.kind for r in await engine.load_history("e1")]
    assert kinds[-3:] == ["StepCompleted", "StepScheduled", "StepStarted"], "one decision, one commit"


async def test_a_completion_that_got_nothing_stops_standing_by_and_the_polls_still_get_the_task(
    engine: EngineService, dispatcher: Dispatcher
) -> None:
    await engine.start("w", {}, execution_id="e2")
    standby = dispatcher.stand_by(worker_id="w9", task_queue="q", steps=["zzz"])  # serves no step of it
    first = await dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0)
    assert first is not None
    await engine.handle("e2", cmd.TaskCompleted(first.token, cmd.OutcomeSuccess(1), worker_id="w1"))

    assert dispatcher.collect(standby) is None
    later = await dispatcher.poll(worker_id="w2", task_queue="q", steps=["b"], wait_ms=0)
    assert later is not None and later.step == "b"


async def test_the_completion_and_its_eager_lease_copy_the_execution_s_state_once(
    engine: EngineService, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    await engine.start("w", {}, execution_id="e3")
    first = await dispatcher.poll(worker_id="w1", task_queue="q", steps=["a", "b"], wait_ms=0)
    assert first is not None
    copies: list[str] = []
    clone = ExecutionState.clone

    def counted(state: ExecutionState) -> ExecutionState:
        copies.append(state.execution_id)
        return clone(state)

    monkeypatch.setattr(ExecutionState, "clone", counted)
    standby = dispatcher.stand_by(worker_id="w1", task_queue="q", steps=["a", "b"])
    await engine.handle("e3", cmd.TaskCompleted(first.token, cmd.OutcomeSuccess(1), worker_id="w1"))
    granted = dispatcher.collect(standby)

    assert granted is not None and granted.step == "b"
    assert copies == ["e3"], "the lease changes the completion's own copy, not a copy of it"
    state = await engine.state_of("e3")
    assert state.steps["b"].worker_id == "w1" and state.results["a"] == 1
