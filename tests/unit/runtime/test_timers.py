"""Durable timers fire on the engine's clock: a fake one moves them, no real time passes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from cerebelum_operator.runtime import Database, Dispatcher, EngineService, FakeClock, TimerService
from cerebelum_operator.store import open_store
from tests.support.waiting import advance_until, eventually

GATE = {"timeline": ["go"], "steps": {"go": {"approval": {"timeout": "10s"}}}}


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[EngineService, TimerService, FakeClock]]:
    store = open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    store.migrate()
    db = Database(store)
    clock = FakeClock()
    engine = EngineService(db, clock=clock)
    timers = TimerService(db, engine, clock=clock)
    await engine.put_workflow("gated", GATE)
    await timers.start()
    try:
        yield engine, timers, clock
    finally:
        await timers.stop()
        db.close()


async def phase(engine: EngineService, execution_id: str) -> str:
    row = await engine.get_execution(execution_id)
    assert row is not None
    return row.phase


async def test_an_approval_timeout_fires_when_the_clock_reaches_it_and_not_before(
    parts: tuple[EngineService, TimerService, FakeClock],
) -> None:
    engine, _, clock = parts
    await engine.start("gated", None, execution_id="e1")
    assert await phase(engine, "e1") == "WaitingForApproval"
    await clock.wait_for_sleepers(1)  # the timer loop sleeps on the clock, not in real time

    await clock.advance(9.9)
    await clock.wait_for_sleepers(1)
    assert await phase(engine, "e1") == "WaitingForApproval"

    await clock.advance(0.1)
    await engine.wait_terminal("e1", 30)  # a bound in real time, generous: the timer fires at once
    assert (await engine.state_of("e1")).phase.terminal
    assert await phase(engine, "e1") != "WaitingForApproval"


# -- many sleepers at once (issue 21: a million due at one instant) ----------------------------------------

NAP = {"taskQueue": "q", "timeline": ["nap", "after"], "steps": {"nap": {"timer": {"duration": "10s"}}}}
FRESH = {"taskQueue": "fresh", "timeline": ["first"]}


@pytest.fixture
async def many(tmp_path: Path) -> AsyncIterator[tuple[EngineService, Dispatcher, FakeClock, Database]]:
    store = open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    store.migrate()
    db = Database(store)
    clock = FakeClock()
    engine = EngineService(db, clock=clock)
    dispatcher = Dispatcher(db, engine, clock=clock)
    await engine.put_workflow("nap", NAP)
    await engine.put_workflow("fresh", FRESH)
    await dispatcher.start()
    try:
        yield engine, dispatcher, clock, db
    finally:
        await dispatcher.stop()
        db.close()


async def sleepers(engine: EngineService, count: int) -> None:
    await asyncio.gather(*(engine.start("nap", {}, execution_id=f"s{i}") for i in range(count)))


class Reads:
    """Counts the store's reads of executions, one by one and in batches."""

    def __init__(self, db: Database) -> None:
        self.one, self.batches = 0, 0
        store = db.store
        load_one, load_many = store.load_execution, store.load_executions

        def one(execution_id: str) -> Any:
            self.one += 1
            return load_one(execution_id)

        def batch(execution_ids: Sequence[str]) -> Any:
            self.batches += 1
            return load_many(execution_ids)

        store.load_execution = one  # type: ignore[method-assign]
        store.load_executions = batch  # type: ignore[method-assign]


async def test_a_wake_of_many_sleepers_reads_their_executions_a_batch_at_a_time(
    many: tuple[EngineService, Dispatcher, FakeClock, Database],
) -> None:
    engine, _, clock, db = many
    timers = TimerService(db, engine, clock=clock, batch=1_000, wake_batch=50, batches_in_flight=2)
    await timers.start()
    try:
        await sleepers(engine, 300)
        reads = Reads(db)
        # All 300 due at one instant. The clock moves a second at a time (a wait that began as it
        # moved still ends), which changes nothing for timers already due.
        await advance_until(clock, lambda: timers.fired == 300, step=1, what="every sleeper woken")
        assert reads.one == 0, "no execution was read on its own"
        assert reads.batches == 300 // 50
        row = await engine.get_execution("s299")
        assert row is not None and row.current_steps == ["after"], "woken: its next step scheduled"
    finally:
        await timers.stop()


async def test_a_new_executions_step_is_dispatched_while_a_big_wake_is_still_under_way(
    many: tuple[EngineService, Dispatcher, FakeClock, Database],
) -> None:
    engine, dispatcher, clock, db = many
    timers = TimerService(db, engine, clock=clock, batch=200, wake_batch=20, batches_in_flight=1)
    await timers.start()
    try:
        await sleepers(engine, 400)
        poll = asyncio.create_task(dispatcher.poll(worker_id="w", task_queue="fresh", steps=["first"], wait_ms=60_000))
        await advance_until(clock, lambda: timers.taken > 0, step=1, what="the wake begun")  # 400 due: 20 batches
        await engine.start("fresh", {}, execution_id="new")
        granted = await asyncio.wait_for(poll, 30)
        fired_by_then = timers.fired
        assert granted is not None and granted.execution_id == "new"
        # The wake takes one batch per turn of the loop and one read per batch: the new step went
        # out between batches, not after the 400 (a bound of 5 batches, not 1-2, for a busy machine).
        assert fired_by_then <= 100, fired_by_then
        await eventually(lambda: timers.fired == 400, what="the rest of the wake")
    finally:
        await timers.stop()


async def test_the_timers_held_in_memory_stay_bounded_whatever_the_number_of_sleepers(
    many: tuple[EngineService, Dispatcher, FakeClock, Database],
) -> None:
    engine, _, clock, db = many
    timers = TimerService(db, engine, clock=clock, batch=100, wake_batch=10, batches_in_flight=2)
    await timers.start()
    try:
        await sleepers(engine, 1_000)  # every one due within the window held in memory (60 s)
        assert timers.held <= 200, f"{timers.held} timers in memory for 1,000 sleepers"
        await advance_until(
            clock, lambda: timers.fired == 1_000, step=1, what="every sleeper woken, the rest read from the store"
        )
        assert await db.run(db.store.due_timers, until_ms=clock.now_ms() + 60_000, limit=10) == []
    finally:
        await timers.stop()


async def test_reading_a_sleeper_does_not_keep_it_in_memory(
    many: tuple[EngineService, Dispatcher, FakeClock, Database],
) -> None:
    engine, _, _, db = many
    await sleepers(engine, 3)
    reads = Reads(db)
    for _ in range(2):
        for i in range(3):
            assert (await engine.state_of(f"s{i}")).display_phase().value == "Sleeping"
    # Each read went to the store: a sleeper read (the reply to its start, a describe) was cached
    # before, so a store of sleepers each read once held 10,000 of them in the engine's cache.
    assert reads.one == 6
