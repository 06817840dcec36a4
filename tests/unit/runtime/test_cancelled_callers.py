"""A caller that goes away while its decision commits: the decision still reaches the dispatcher.

Found by the operator chaos test: a worker SIGKILLed just after sending a step's result. The API
server cancelled the call when the connection dropped, while the engine was awaiting the commit;
the commit landed, but the cancelled call never told the dispatcher about the tasks it scheduled,
so they sat `queued` in the store, offered to nobody, until the next restart.
On a fake clock, with a real SQLite store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.runtime import Dispatcher, EngineService, FakeClock
from cerebelum_operator.store import AppendRequest
from tests.support.waiting import advance_until, eventually

SPEC = {"taskQueue": "q", "timeline": ["a", ["b", "c"]]}


async def _cancelled_while_committing(
    engine: EngineService, monkeypatch: pytest.MonkeyPatch, call: Coroutine[Any, Any, object]
) -> None:
    """Run `call`, cancelling it the moment its append is queued: the commit itself goes ahead."""
    real_append = engine.db.append
    running: list[asyncio.Task[object]] = []

    def append_then_cancel(request: AppendRequest) -> asyncio.Future[None]:
        future = real_append(request)
        running[0].cancel()  # as the API server does when the caller's connection drops
        return future

    monkeypatch.setattr(engine.db, "append", append_then_cancel)
    running.append(asyncio.create_task(call))
    with pytest.raises(asyncio.CancelledError):
        await running[0]
    monkeypatch.setattr(engine.db, "append", real_append)


async def test_tasks_scheduled_by_a_result_whose_caller_was_cancelled_mid_commit_are_still_handed_out(
    engine: EngineService, dispatcher: Dispatcher, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await engine.start("w", {}, execution_id="e1")
    first = await dispatcher.poll(worker_id="killed", task_queue="q", steps=["a"], wait_ms=0)
    assert first is not None and first.step == "a"

    report = engine.handle("e1", cmd.TaskCompleted(first.token, cmd.OutcomeSuccess({"n": 1}), worker_id="killed"))
    await _cancelled_while_committing(engine, monkeypatch, report)
    await eventually(
        lambda: (
            [type(e.event).__name__ for e in engine.db.store.load_history("e1")][-2:]
            == ["StepScheduled", "StepScheduled"]
        ),
        what="the result committed despite the cancelled call",
    )

    # Another worker takes both parallel tasks once the dead worker's sticky window has passed.
    taken: list[str] = []

    async def survivor_polls() -> None:
        while len(taken) < 2:
            granted = await dispatcher.poll(worker_id="survivor", task_queue="q", steps=["b", "c"], wait_ms=500)
            if granted is not None:
                taken.append(granted.step)

    survivor = asyncio.create_task(survivor_polls())
    try:
        await advance_until(clock, survivor.done, step=0.05, what="the survivor leasing b and c")
    finally:
        survivor.cancel()
    assert sorted(taken) == ["b", "c"]


async def test_an_execution_started_by_a_caller_cancelled_mid_commit_has_its_first_task_handed_out(
    engine: EngineService, dispatcher: Dispatcher, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _cancelled_while_committing(engine, monkeypatch, engine.start("w", {}, execution_id="e2"))
    await eventually(lambda: engine.db.store.get_execution("e2") is not None, what="the start committed")

    poll = asyncio.create_task(dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=2000))
    await advance_until(clock, poll.done, step=0.05, what="the poll returning")
    granted = poll.result()
    assert granted is not None and granted.step == "a"
