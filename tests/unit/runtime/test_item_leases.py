"""Only the worker an item's task is leased to can complete it (issue 13's rule, for forEach items).

An item's lease is no event in the history (one event per item outcome keeps 10,000 items within
the history limit): the tasks table holds it, the dispatcher's book mirrors it, and the engine
service checks a completion's worker against it. A real SQLite store, on a fake clock.
"""

from __future__ import annotations

from cerebelum_operator.engine import Reply
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.runtime import Dispatcher, EngineService

SPEC = {"taskQueue": "q", "timeline": ["fan"], "steps": {"fan": {"forEach": {"items": "[1, 2]"}}}}


async def test_an_items_completion_counts_only_from_the_worker_holding_its_lease(
    engine: EngineService, dispatcher: Dispatcher
) -> None:
    await engine.start("w", {}, execution_id="e1")
    granted = await dispatcher.poll(worker_id="holder", task_queue="q", steps=["fan"], wait_ms=0)
    assert granted is not None and granted.arguments["item"] == 1
    success = cmd.OutcomeSuccess("done")

    other = await engine.handle("e1", cmd.TaskCompleted(granted.token, success, worker_id="intruder"))
    holder = await engine.handle("e1", cmd.TaskCompleted(granted.token, success, worker_id="holder"))

    assert other.reply == Reply.STALE
    assert holder.reply == Reply.ACCEPTED


async def test_an_item_nobody_leased_cannot_be_completed(engine: EngineService, dispatcher: Dispatcher) -> None:
    await engine.start("w", {}, execution_id="e2")
    queued = [token for token in engine.db.store.load_tasks() if token.execution_id == "e2"]
    assert len(queued) == 2 and all(row.state == "queued" for row in queued)

    decision = await engine.handle("e2", cmd.TaskCompleted(queued[0].token, cmd.OutcomeSuccess(1), worker_id="w1"))

    assert decision.reply == Reply.STALE
    assert not (await engine.state_of("e2")).fan_outs["fan"].done


async def test_an_items_lease_survives_a_restart_of_the_dispatcher_from_the_tasks_table(
    engine: EngineService, dispatcher: Dispatcher
) -> None:
    await engine.start("w", {}, execution_id="e3")
    granted = await dispatcher.poll(worker_id="holder", task_queue="q", steps=["fan"], wait_ms=0)
    assert granted is not None
    await dispatcher.stop()
    restarted = Dispatcher(engine.db, engine, clock=engine.clock)  # rebuilt from the store alone
    await restarted.start()
    try:
        assert restarted.holder_of(granted.token) == "holder"
        intruder = await engine.handle("e3", cmd.TaskCompleted(granted.token, cmd.OutcomeSuccess(1), worker_id="x"))
        assert intruder.reply == Reply.STALE
    finally:
        await restarted.stop()
