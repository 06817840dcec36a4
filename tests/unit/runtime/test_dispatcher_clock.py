"""The dispatcher's glue on a fake clock: polls wait, leases expire and progress carries over, with no real sleep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.runtime import Database, Dispatcher, EngineService, FakeClock
from cerebelum_operator.store import open_store
from tests.support.waiting import eventually

SPEC = {
    "taskQueue": "q",
    "timeline": ["a"],
    "defaults": {"lease": "2s", "retry": {"maxAttempts": 3, "initialInterval": "1s"}},
}


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def dispatcher(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Dispatcher]:
    store = open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    store.migrate()
    store.put_workflow("w", SPEC, now_ms=0)
    db = Database(store)
    engine = EngineService(db, clock=clock)
    dispatcher = Dispatcher(db, engine, clock=clock, sweep_interval_s=0.5)
    await dispatcher.start()
    await clock.wait_for_sleepers(2)  # the promote and sweep loops, asleep on the clock
    try:
        yield dispatcher
    finally:
        await dispatcher.stop()
        db.close()


async def test_a_poll_with_nothing_to_do_returns_when_its_wait_ends_on_the_clock(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    poll = asyncio.create_task(dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=20_000))
    await clock.wait_for_sleepers(3)
    await clock.advance(19)
    assert not poll.done()
    await clock.advance(1)
    assert await asyncio.wait_for(poll, 5) is None


async def test_a_waiting_poll_gets_the_new_task_leased_in_the_commit_that_scheduled_it(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    poll = asyncio.create_task(dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=20_000))
    await clock.wait_for_sleepers(3)
    await dispatcher.engine.start("w", {}, execution_id="e1")
    granted = await asyncio.wait_for(poll, 5)
    assert granted is not None and granted.step == "a" and granted.last_progress is None
    loaded = await dispatcher.db.run(dispatcher.db.store.load_execution, "e1")
    assert loaded is not None
    kinds = [e.event.kind for e in loaded[1]]
    assert kinds == ["ExecutionStarted", "StepScheduled", "StepStarted"], "eager: leased in the same decision"


async def test_an_expired_lease_keeps_its_last_progress_for_the_next_attempt(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    engine = dispatcher.engine
    await engine.start("w", {}, execution_id="e2")
    first = await dispatcher.poll(worker_id="gone", task_queue="q", steps=["a"], wait_ms=0)
    assert first is not None and first.attempt == 1
    beat = await dispatcher.heartbeat(token=first.token, worker_id="gone", progress={"rows": 500})
    assert not beat.lease_lost
    state = await engine.state_of("e2")
    assert engine.live_steps(state)["a"].progress == {"rows": 500}, "describe reads it while it runs"

    await clock.advance(2.5)  # the worker went silent: the sweep (asleep on the clock) times the lease out

    async def second_attempt() -> bool:
        return (await engine.state_of("e2")).steps["a"].attempt == 2

    await eventually(second_attempt, what="the second attempt, in the store's thread")
    failed = (await engine.state_of("e2")).steps["a"]
    assert failed.last_error is not None and failed.last_error.startswith("LeaseExpired")

    await clock.advance(1.5)  # the retry's backoff
    second = await dispatcher.poll(worker_id="w2", task_queue="q", steps=["a"], wait_ms=0)
    assert second is not None and second.attempt == 2
    assert second.last_progress == {"rows": 500}


async def test_a_failed_attempt_hands_its_progress_to_the_next_and_a_success_clears_it(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    engine = dispatcher.engine
    await engine.start("w", {}, execution_id="e3")
    first = await dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0)
    assert first is not None
    await dispatcher.heartbeat(token=first.token, worker_id="w1", progress="page 7")
    failure = cmd.OutcomeFailure("Boom", "it broke")
    progress = dispatcher.progress_of(first.token)
    await engine.handle("e3", cmd.TaskCompleted(first.token, failure, worker_id="w1", progress=progress))
    loaded = await dispatcher.db.run(dispatcher.db.store.load_execution, "e3")
    assert loaded is not None
    history = loaded[1]
    failed = [e.event for e in history if e.event.kind == "StepFailed"]
    assert failed and failed[0].to_data()["last_progress"] == "page 7", "recorded in the history"
    await clock.advance(1.5)
    second = await dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0)
    assert second is not None and second.last_progress == "page 7"
    await engine.handle("e3", cmd.TaskCompleted(second.token, cmd.OutcomeSuccess(1), worker_id="w1"))
    assert (await engine.state_of("e3")).steps["a"].last_progress is None


async def test_a_poll_cancelled_while_its_task_is_being_leased_leaves_the_lease_for_its_workers_next_poll(
    dispatcher: Dispatcher, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen in the chaos suite: a worker SIGKILLed while its poll was leasing a task stranded the
    # task (taken from the queue, its lease never seen), so its execution stayed Running.
    engine = dispatcher.engine
    await engine.start("w", {}, execution_id="e4")
    real_handle = engine.handle
    leasing = asyncio.Event()
    commit = asyncio.Event()

    async def slow_handle(execution_id: str, command: cmd.Command) -> object:
        if isinstance(command, cmd.TaskStarted):
            leasing.set()
            await commit.wait()  # the commit is in flight when the poll is cancelled
        return await real_handle(execution_id, command)

    monkeypatch.setattr(engine, "handle", slow_handle)
    poll = asyncio.create_task(dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0))
    await asyncio.wait_for(leasing.wait(), 5)
    poll.cancel()  # the worker went away
    with pytest.raises(asyncio.CancelledError):
        await poll
    commit.set()

    async def running() -> bool:
        return (await engine.state_of("e4")).steps["a"].phase.value == "Running"

    await eventually(running, what="the lease committed in the store's thread")
    deadline = asyncio.get_running_loop().time() + 30
    again = None
    while again is None:  # the lease lands in the store's thread, then is kept for w1
        assert await dispatcher.poll(worker_id="w2", task_queue="q", steps=["a"], wait_ms=0) is None
        again = await dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0)
        assert asyncio.get_running_loop().time() < deadline, "the lease that landed never reached its worker"
        await asyncio.sleep(0.01)
    assert again.step == "a" and again.execution_id == "e4"


async def test_a_heartbeat_with_new_progress_tells_the_progress_listeners_and_a_repeat_does_not(
    dispatcher: Dispatcher,
) -> None:
    engine = dispatcher.engine
    heard: list[str] = []
    engine.add_progress_listener(heard.append)
    await engine.start("w", {}, execution_id="e4")
    task = await dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0)
    assert task is not None

    await dispatcher.heartbeat(token=task.token, worker_id="w1", progress=None)
    assert heard == [], "a beat without progress changes nothing to show"
    await dispatcher.heartbeat(token=task.token, worker_id="w1", progress={"page": 1})
    await dispatcher.heartbeat(token=task.token, worker_id="w1", progress={"page": 1})
    await dispatcher.heartbeat(token=task.token, worker_id="w1", progress={"page": 2})
    assert heard == ["e4", "e4"]
