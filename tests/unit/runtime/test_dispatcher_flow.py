"""Pause and rate limits through the dispatcher and the store, on a fake clock, across a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase, Reply
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.rates import RateLimit
from cerebelum_operator.model.shards import DEFAULT_SHARDS, shard_of
from cerebelum_operator.runtime import Dispatcher, EngineService, FakeClock, TaskQueueService, every
from tests.support.waiting import eventually
from tests.unit.runtime.conftest import sqlite_database

SPEC = {"taskQueue": "q", "timeline": ["a"], "defaults": {"lease": "30s"}}


class Engine:
    """One engine process: store, engine, dispatcher and queue settings, started on the fake clock."""

    def __init__(self, path: Path, clock: FakeClock) -> None:
        self.db = sqlite_database(path, w=SPEC)
        self.engine = EngineService(self.db, clock=clock)
        self.dispatcher = Dispatcher(self.db, self.engine, clock=clock)
        self.queues = TaskQueueService(self.db, self.dispatcher, clock=clock)

    async def stop(self) -> None:
        await self.dispatcher.stop()
        self.db.close()


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def first(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Engine]:
    engine = Engine(tmp_path / "engine.db", clock)
    await engine.dispatcher.start()
    try:
        yield engine
    finally:
        await engine.stop()


async def _started_at(engine: Engine, execution_id: str) -> int | None:
    history = await engine.db.run(engine.db.store.load_history, execution_id)
    return next((e.at_ms for e in history if e.event.kind == "StepStarted"), None)


async def test_a_paused_queue_holds_its_tasks_across_a_poll_and_hands_them_out_when_resumed(
    first: Engine, clock: FakeClock
) -> None:
    await first.queues.pause("q", note="deploy")
    await first.engine.start("w", {}, execution_id="e1")
    assert await first.dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0) is None
    state = await first.engine.state_of("e1")
    token = state.steps["a"].token
    assert token is not None
    assert first.dispatcher.waiting_hint(token) == "task queue 'q' is paused (deploy)"
    [view] = await first.queues.list()
    assert (view.name, view.paused, view.ready, view.note) == ("q", True, 1, "deploy")

    poll = asyncio.create_task(first.dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=20_000))
    await clock.advance(5)
    assert not poll.done()
    await first.queues.resume("q")
    granted = await asyncio.wait_for(poll, 5)
    assert granted is not None and granted.execution_id == "e1"


async def test_a_pause_survives_a_restart(first: Engine, clock: FakeClock, tmp_path: Path) -> None:
    await first.queues.pause("q")
    await first.engine.start("w", {}, execution_id="e1")
    await first.stop()
    second = Engine(tmp_path / "engine.db", clock)
    await second.dispatcher.start()
    try:
        assert await second.dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0) is None
        await second.queues.resume("q")
        assert await second.dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0) is not None
    finally:
        await second.stop()


async def test_a_rate_limit_is_kept_across_a_restart_from_the_starts_the_store_recorded(
    first: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    await first.queues.set_rate_limit("q", RateLimit(2, 1000))
    for i in range(4):
        await first.engine.start("w", {}, execution_id=f"e{i}")
    polls = [await first.dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0) for _ in range(3)]
    assert [p is not None for p in polls] == [True, True, False]
    await clock.advance(0.3)
    await first.stop()  # as if killed: nothing but the store is left

    second = Engine(tmp_path / "engine.db", clock)
    await second.dispatcher.start()
    try:
        assert await second.dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0) is None
        token = (await second.engine.state_of("e2")).steps["a"].token
        assert token is not None and second.dispatcher.waiting_hint(token) == "rate limited: queue 'q' 2/1s"
        await clock.advance(0.7)
        later = [await second.dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0) for _ in range(3)]
        assert [p is not None for p in later] == [True, True, False]
        starts = sorted([t for i in range(4) if (t := await _started_at(second, f"e{i}")) is not None])
        assert len(starts) == 4
        assert all(b - a >= 1000 for a, b in zip(starts, starts[2:], strict=False)), starts
    finally:
        await second.stop()


async def test_a_task_running_when_its_queue_is_paused_finishes_and_its_outcome_is_accepted(
    first: Engine, clock: FakeClock
) -> None:
    await first.engine.start("w", {}, execution_id="e1")
    granted = await first.dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0)
    assert granted is not None
    await first.queues.pause("q")
    heartbeat = await first.dispatcher.heartbeat(token=granted.token, worker_id="w1", progress=None)
    assert not heartbeat.lease_lost and not heartbeat.cancel_requested
    decision = await first.engine.handle(
        "e1", cmd.TaskCompleted(granted.token, cmd.OutcomeSuccess({"ok": True}), worker_id="w1")
    )
    assert decision.reply == Reply.ACCEPTED
    assert (await first.engine.state_of("e1")).phase == ExecutionPhase.SUCCEEDED


async def test_an_engine_sharing_the_store_applies_a_pause_another_wrote_when_it_next_reads_the_settings(
    first: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    # Engines that split the shards share one store: the pause `first` wrote reaches the other's
    # dispatcher when it reads the settings again (told by `first`, or every few seconds anyway).
    other = Engine(tmp_path / "engine.db", clock)
    await other.dispatcher.start()
    following = asyncio.create_task(every(clock, 2.0, other.queues.refresh, what="reading the settings"))
    try:
        await other.engine.start("w", {}, execution_id="e1")
        await first.queues.pause("q", note="deploy")
        assert not other.dispatcher.book.gate.control("q").paused, "not read yet"

        await clock.advance(2)
        await eventually(lambda: other.dispatcher.book.gate.control("q").paused, what="the pause read from the store")
        assert await other.dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0) is None
        assert other.dispatcher.book.gate.control("q").note == "deploy"

        await first.queues.resume("q")
        assert await other.queues.refresh() == ("q",), "read at once when told"
        assert await other.queues.refresh() == (), "nothing changed since"
        assert await other.dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0) is not None
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await other.stop()


async def test_a_refresh_that_read_the_store_just_before_a_pause_does_not_put_the_old_setting_back(
    first: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    queues, db = first.queues, first.db
    read_done, release = asyncio.Event(), asyncio.Event()
    run = db.run
    armed = False

    async def slow_list(work: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal armed
        result = await run(work, *args, **kwargs)
        if armed and work == db.store.list_task_queues:  # the refresh's read (the first once armed), held
            armed = False
            read_done.set()
            await release.wait()
        return result

    monkeypatch.setattr(db, "run", slow_list)
    await first.queues.resume("q")  # a row in the store, running
    armed = True
    refreshing = asyncio.create_task(queues.refresh())
    await read_done.wait()  # it read "running"
    pausing = asyncio.create_task(queues.pause("q", note="deploy"))
    # Let the pause go as far as it may meanwhile: to its end, unless it waits for the refresh.
    await eventually(lambda: pausing.done() or queues._changing.locked(), what="the pause done or waiting")
    release.set()
    await asyncio.gather(refreshing, pausing)

    assert first.dispatcher.book.gate.control("q").paused, "the stale read did not undo the pause"


async def test_engines_that_split_the_shards_share_a_queue_s_rate_limit_through_the_store(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Each dispatcher counts its own starts; the store counts both engines' (`RateLimitReached`)."""
    halves = (range(8), range(8, 16))
    engines = [Engine(tmp_path / "engine.db", clock) for _ in halves]
    for engine, half in zip(engines, halves, strict=True):
        store = engine.db.store
        store.set_fence({s: store.take_shard(s, owner=str(half), address=None, now_ms=0) for s in half})
        await engine.dispatcher.start()
    a, b = engines
    try:
        await a.queues.set_rate_limit("q", RateLimit(2, 1000))
        await b.queues.refresh()  # as every engine of a split re-reads the settings (or is told at once)
        ids = [
            [f"e{n}" for n in range(1000) if shard_of(f"e{n}", shards=DEFAULT_SHARDS) in half][:2] for half in halves
        ]
        for engine, mine in zip(engines, ids, strict=True):
            for execution_id in mine:
                await engine.engine.start("w", {}, execution_id=execution_id)
        assert all([await a.dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=0) for _ in range(2)])

        # b's own window is empty, but a's two starts fill the queue's: its lease is refused, nothing lost.
        assert await b.dispatcher.poll(worker_id="w2", task_queue="q", steps=["a"], wait_ms=0) is None
        token = (await b.engine.state_of(ids[1][0])).steps["a"].token
        assert token is not None and b.dispatcher.waiting_hint(token) == "rate limited: queue 'q' 2/1s"
        assert [await _started_at(b, execution_id) for execution_id in ids[1]] == [None, None]

        await clock.advance(1.0)  # a's starts leave the window
        later = [await b.dispatcher.poll(worker_id="w2", task_queue="q", steps=["a"], wait_ms=0) for _ in range(3)]
        assert [p is not None for p in later] == [True, True, False]
        starts = sorted([t for mine in ids for i in mine if (t := await _started_at(a, i)) is not None])
        assert len(starts) == 4
        assert all(later - earlier >= 1000 for earlier, later in zip(starts, starts[2:], strict=False)), starts
    finally:
        for engine in engines:
            await engine.stop()
