"""Durable timers fire on the engine's clock: a fake one moves them, no real time passes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.runtime import Database, Dispatcher, EngineService, FakeClock, TimerService
from cerebelum_operator.runtime.task_lifecycle import QueueBacklog
from cerebelum_operator.runtime.timers import MAX_FED_QUEUES, WakePace
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


@pytest.mark.parametrize("backpressure", [False, True], ids=["alone", "with-backpressure"])
async def test_a_new_executions_step_is_dispatched_while_a_big_wake_is_still_under_way(
    many: tuple[EngineService, Dispatcher, FakeClock, Database], backpressure: bool
) -> None:
    engine, dispatcher, clock, db = many
    # With backpressure, a bound the 400 never reach: the wake's pace is asked every batch, not binding.
    pace: dict[str, Any] = {"tasks": dispatcher, "max_backlog": 1_000} if backpressure else {}
    timers = TimerService(db, engine, clock=clock, batch=200, wake_batch=20, batches_in_flight=1, **pace)
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


# -- backpressure: a wake waits for the queues it feeds (issue 21) ------------------------------------------


def backlog(queued: int, drained_at: int | None = None) -> QueueBacklog:
    return QueueBacklog(queued, drained_at)


T0 = 1_000_000


def test_the_pace_takes_batches_while_the_fed_queues_are_within_the_bound() -> None:
    pace = WakePace(bound=100, resume=60, stall_ms=10_000, fed_window_ms=60_000)
    assert pace.decide({}, T0) is None, "nothing fed yet: the first batch goes"
    assert pace.decide({"q": backlog(100, T0), "r": backlog(0)}, T0) is None
    assert not pace.holding


def test_the_pace_holds_over_the_bound_and_goes_on_only_at_the_resume_mark() -> None:
    pace = WakePace(bound=100, resume=60, stall_ms=10_000, fed_window_ms=60_000)
    assert pace.decide({"q": backlog(101, T0 - 5), "r": backlog(3)}, T0) == T0 + 10_000
    assert list(pace.holding) == ["q"]
    assert not pace.may_resume({"q": backlog(61)})
    assert pace.decide({"q": backlog(61, T0 + 1), "r": backlog(3)}, T0 + 1) == T0 + 10_001, "hysteresis"
    assert pace.may_resume({"q": backlog(60)})
    assert pace.decide({"q": backlog(60, T0 + 2), "r": backlog(3)}, T0 + 2) is None
    assert not pace.holding
    assert pace.decide({"q": backlog(100, T0 + 3)}, T0 + 3) is None, "back to the bound, not the mark"


def test_a_queue_nobody_drains_holds_the_wake_for_the_stall_time_only() -> None:
    pace = WakePace(bound=100, resume=60, stall_ms=10_000, fed_window_ms=60_000)
    assert pace.decide({"q": backlog(500)}, T0) == T0 + 10_000, "never leased: held from when it went over"
    assert pace.decide({"q": backlog(500)}, T0 + 9_999) == T0 + 10_000
    assert pace.decide({"q": backlog(500)}, T0 + 10_000) is None, "stalled: timers go on"
    assert pace.decide({"q": backlog(600)}, T0 + 20_000) is None
    # A worker took one: it drains again, so it holds the wake again, for a stall time from that lease.
    assert pace.decide({"q": backlog(599, T0 + 20_500)}, T0 + 21_000) == T0 + 30_500
    # Down to the mark, then over again: the stall time counts afresh.
    assert pace.decide({"q": backlog(10, T0 + 30_000)}, T0 + 30_000) is None
    assert pace.decide({"q": backlog(101, T0 + 30_000)}, T0 + 40_000) == T0 + 50_000


def test_the_pace_counts_the_queues_fed_lately_and_remembers_a_bounded_number() -> None:
    pace = WakePace(bound=100, resume=60, stall_ms=10_000, fed_window_ms=60_000)
    pace.fed("q", T0)
    pace.fed("r", T0 + 30_000)
    assert pace.queues(T0 + 60_000) == ["q", "r"]
    assert pace.queues(T0 + 60_001) == ["r"], "not fed for a minute: no longer counts"
    pace.fed("r", T0 + 80_000)
    assert pace.queues(T0 + 100_000) == ["r"]
    for i in range(MAX_FED_QUEUES + 5):
        pace.fed(f"q{i}", T0 + 100_000)
    queues = pace.queues(T0 + 100_000)
    assert len(queues) == MAX_FED_QUEUES and "r" not in queues and "q0" not in queues


class QueuedPeak:
    """The most tasks of a queue queued at once, as the dispatcher counts them after each decision."""

    def __init__(self, engine: EngineService, dispatcher: Dispatcher, task_queue: str) -> None:
        self.peak = 0

        def seen(*_: Any) -> None:
            self.peak = max(self.peak, dispatcher.backlog(task_queue).queued)

        engine.add_listener(seen)  # after the dispatcher's: it sees each decision applied


async def worker(engine: EngineService, dispatcher: Dispatcher, task_queue: str, step: str) -> None:
    """Take and complete the step's tasks one at a time, forever (its polls wait on the fake clock)."""
    while True:
        task = await dispatcher.poll(worker_id="w", task_queue=task_queue, steps=[step], wait_ms=60_000)
        if task is not None:
            await engine.handle(
                task.execution_id, cmd.TaskCompleted(task.token, cmd.OutcomeSuccess(None), worker_id="w")
            )


async def test_a_wake_stops_while_the_queue_it_feeds_is_full_and_goes_on_as_workers_drain_it(
    many: tuple[EngineService, Dispatcher, FakeClock, Database],
) -> None:
    engine, dispatcher, clock, db = many
    bound, wake_batch = 60, 20
    timers = TimerService(
        db,
        engine,
        clock=clock,
        batch=200,
        wake_batch=wake_batch,
        batches_in_flight=1,
        tasks=dispatcher,
        max_backlog=bound,
    )
    peak = QueuedPeak(engine, dispatcher, "q")
    await timers.start()
    draining: asyncio.Task[None] | None = None
    try:
        await sleepers(engine, 400)  # all due at one instant, their next step in queue q
        await clock.advance(10)  # to that instant, and no further: the wake runs on the store's pace
        await eventually(lambda: timers.held_back > 0 or timers.fired == 400, what="the wake held back or done")
        # No worker yet: the wake filled q to the bound (plus the batch in flight when it looked) and waits.
        queued = dispatcher.backlog("q").queued
        assert queued <= bound + wake_batch, f"{queued} tasks queued for a bound of {bound}"
        assert timers.fired < 400
        left = await db.run(db.store.due_timers, until_ms=clock.now_ms(), limit=1_000)
        assert len(left) == 400 - timers.fired, "the timers held back are still in the store: deferred, not lost"

        # A worker drains q; the clock stays still: the drains alone prompt the wake, no time passes.
        at = clock.now_ms()
        draining = asyncio.create_task(worker(engine, dispatcher, "q", "after"))
        await eventually(lambda: timers.fired == 400, what="every sleeper woken as the worker drained the queue")
        await eventually(lambda: dispatcher.backlog("q").queued == 0, what="every woken step done")
        assert clock.now_ms() == at
        assert peak.peak <= bound + wake_batch, f"{peak.peak} tasks queued at once for a bound of {bound}"
    finally:
        if draining is not None:
            draining.cancel()
            await asyncio.gather(draining, return_exceptions=True)
        await timers.stop()


async def test_a_wake_held_by_a_queue_nobody_drains_goes_on_after_the_stall_time(
    many: tuple[EngineService, Dispatcher, FakeClock, Database],
) -> None:
    engine, dispatcher, clock, db = many
    timers = TimerService(
        db, engine, clock=clock, batch=200, wake_batch=20, batches_in_flight=1, tasks=dispatcher, max_backlog=60
    )
    await timers.start()
    try:
        await sleepers(engine, 200)
        await clock.advance(10)  # when they are due: the hold starts now
        await eventually(lambda: timers.held_back > 0, what="the wake held back")
        fired = timers.fired  # no batch in flight: the wake looks with the gate held
        assert fired < 200
        await clock.advance(9.9)
        assert timers.fired == fired, "held within the stall time"
        await clock.advance(0.1)
        # Stalled now: the rest fire without the clock moving on, late by the stall time, not more.
        await eventually(lambda: timers.fired == 200, what="the rest woken once q counts as stalled")
        assert dispatcher.backlog("q").queued == 200, "nobody took them: every woken step waits in q"
    finally:
        await timers.stop()


async def test_a_timer_whose_row_cannot_be_deleted_while_the_store_is_down_is_tried_again(
    parts: tuple[EngineService, TimerService, FakeClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, timers, _ = parts
    from cerebelum_operator.runtime import ExecutionNotFound
    from cerebelum_operator.store import StoreUnavailable

    def down(timer_id: str) -> None:
        raise StoreUnavailable("the database is unavailable: restarting")

    monkeypatch.setattr(engine.db.store, "delete_timer", down)
    timers._firing.add("gone/t")
    await timers._settle("gone/t", "gone", ExecutionNotFound("gone"))  # raised out of the batch before
    assert timers.held == 1 and timers.fired == 0  # held again, to fire (and be deleted) a second later
