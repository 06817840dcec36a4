"""The schedule service fires on the engine's clock: a fake one moves it, no real time passes.

The engine and its SQLite store are real; only the clock is fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.schedule_spec import ScheduleSpec
from cerebelum_operator.engine.schedules import Outcome, execution_id
from cerebelum_operator.runtime import (
    EngineService,
    FakeClock,
    ScheduleInvalid,
    ScheduleNotFound,
    ScheduleService,
)
from cerebelum_operator.store import ScheduleExists, StoreUnavailable
from tests.support.waiting import eventually

# One task nobody polls for: an execution runs until it is cancelled, so overlap can be seen.
SPEC = {"taskQueue": "jobs", "timeline": ["work"]}
START_MS = 1_700_000_000_000  # the fake clock's start: a multiple of 20 s, so intervals line up


@pytest.fixture
async def schedules(engine: EngineService, clock: FakeClock) -> AsyncIterator[ScheduleService]:
    service = ScheduleService(engine.db, engine, clock=clock)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def every(interval: str = "10s", **fields: Any) -> ScheduleSpec:
    return ScheduleSpec.model_validate({"workflow": "w", "interval": interval, **fields})


async def started_by(engine: EngineService, key: str) -> list[str]:
    return sorted(
        row.execution_id for row in await engine.list_executions(workflow="w") if row.execution_id.startswith(key)
    )


async def end(engine: EngineService, execution: str) -> None:
    await engine.handle(execution, cmd.Cancel("done"))


async def test_a_schedule_fires_when_the_clock_reaches_its_due_time_and_not_before(
    engine: EngineService, clock: FakeClock, schedules: ScheduleService
) -> None:
    view = await schedules.create("report", every())
    assert view.next_fire_at_ms == START_MS + 10_000
    await clock.wait_for_sleepers(1)
    await clock.advance(9.9)
    await clock.wait_for_sleepers(1)
    assert await started_by(engine, "report") == []
    await clock.advance(0.1)
    first = execution_id("report", START_MS + 10_000)
    await eventually(lambda: engine.get_execution(first), what="the first fire")

    async def recorded() -> bool:  # the fire's state is written just after its start
        view = await schedules.get("report")
        return view is not None and view.state.last_due_ms == START_MS + 10_000

    await eventually(recorded, what="the fire recorded")
    view_after = await schedules.get("report")
    assert view_after is not None
    assert view_after.next_fire_at_ms == START_MS + 20_000


async def test_skip_does_not_start_while_the_previous_execution_runs(
    engine: EngineService, clock: FakeClock, schedules: ScheduleService
) -> None:
    await schedules.create("report", every())
    await clock.wait_for_sleepers(1)
    await clock.advance(10)
    first = execution_id("report", START_MS + 10_000)
    await eventually(lambda: engine.get_execution(first), what="the first fire")
    await clock.wait_for_sleepers(1)
    await clock.advance(10)

    async def skipped() -> bool:
        view = await schedules.get("report")
        return view is not None and view.state.skipped == 1

    await eventually(skipped, what="the second due time skipped")
    await end(engine, first)
    await clock.wait_for_sleepers(1)
    await clock.advance(10)
    third = execution_id("report", START_MS + 30_000)
    await eventually(lambda: engine.get_execution(third), what="the third fire, once the first ended")
    assert await started_by(engine, "report") == [first, third]


async def test_buffer_one_starts_the_held_fire_as_soon_as_the_running_execution_ends(
    engine: EngineService, clock: FakeClock, schedules: ScheduleService
) -> None:
    await schedules.create("report", every(overlap="bufferOne"))
    await clock.wait_for_sleepers(1)
    await clock.advance(10)
    first = execution_id("report", START_MS + 10_000)
    await eventually(lambda: engine.get_execution(first), what="the first fire")
    await clock.wait_for_sleepers(1)
    await clock.advance(10)

    async def buffered() -> bool:
        view = await schedules.get("report")
        return view is not None and view.state.buffered_due_ms == START_MS + 20_000

    await eventually(buffered, what="the second due time held")
    await end(engine, first)  # no clock move: the end of the execution alone releases it
    second = execution_id("report", START_MS + 20_000)
    await eventually(lambda: engine.get_execution(second), what="the held fire started")


async def test_cancel_running_cancels_the_previous_execution_before_starting(
    engine: EngineService, clock: FakeClock, schedules: ScheduleService
) -> None:
    await schedules.create("report", every(overlap="cancelRunning"))
    await clock.wait_for_sleepers(1)
    await clock.advance(10)
    first = execution_id("report", START_MS + 10_000)
    await eventually(lambda: engine.get_execution(first), what="the first fire")
    await clock.wait_for_sleepers(1)
    await clock.advance(10)
    await eventually(lambda: engine.get_execution(execution_id("report", START_MS + 20_000)), what="the second")
    row = await engine.get_execution(first)
    assert row is not None
    assert row.phase == "Cancelled"


async def test_a_restart_within_the_catch_up_window_fires_the_missed_due_time_once(
    engine: EngineService, clock: FakeClock
) -> None:
    before = ScheduleService(engine.db, engine, clock=clock)
    await before.start()
    await before.create("report", every("20s", catchupWindow="5s"))
    await before.stop()  # the engine is down across the due time
    await clock.advance(25)
    after = ScheduleService(engine.db, engine, clock=clock)
    await after.start()
    try:
        due = execution_id("report", START_MS + 20_000)
        await eventually(lambda: engine.get_execution(due), what="the missed due time fired on restart")
        assert await started_by(engine, "report") == [due]
    finally:
        await after.stop()


async def test_a_restart_past_the_catch_up_window_drops_and_counts_the_missed_due_times(
    engine: EngineService, clock: FakeClock
) -> None:
    before = ScheduleService(engine.db, engine, clock=clock)
    await before.start()
    await before.create("report", every("20s", catchupWindow="5s"))
    await before.stop()
    await clock.advance(60 * 60 + 15)  # an hour of outage, then 15 s past the last due time
    after = ScheduleService(engine.db, engine, clock=clock)
    await after.start()
    try:

        async def counted() -> bool:
            view = await after.get("report")
            return view is not None and view.state.missed == 180

        await eventually(counted, what="an hour of missed due times counted")
        assert await started_by(engine, "report") == []
    finally:
        await after.stop()


async def test_a_state_write_lost_after_the_start_starts_nothing_twice(
    engine: EngineService, clock: FakeClock, schedules: ScheduleService, monkeypatch: pytest.MonkeyPatch
) -> None:
    await schedules.create("report", every())
    store = engine.db.store
    real_update = store.update_schedule
    failures = [StoreUnavailable("the database dropped the connection")]

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real_update(*args, **kwargs)

    monkeypatch.setattr(store, "update_schedule", failing_once)
    await clock.wait_for_sleepers(1)
    await clock.advance(10)
    first = execution_id("report", START_MS + 10_000)
    await eventually(lambda: engine.get_execution(first), what="the fire whose state write fails")
    await clock.wait_for_sleepers(1)
    await clock.advance(1)  # the retry: the same plan, the same id

    async def recorded() -> bool:
        view = await schedules.get("report")
        return view is not None and view.state.last_due_ms == START_MS + 10_000

    await eventually(recorded, what="the retried state write")
    assert await started_by(engine, "report") == [first]


async def test_pause_stops_fires_and_resume_does_not_catch_up_the_paused_due_times(
    engine: EngineService, clock: FakeClock, schedules: ScheduleService
) -> None:
    await schedules.create("report", every())
    paused = await schedules.pause("report", note="maintenance until noon")
    assert paused.spec.paused
    assert paused.spec.note == "maintenance until noon"
    assert paused.next_fire_at_ms is None
    await clock.advance(35)
    resumed = await schedules.resume("report")
    assert resumed.next_fire_at_ms == START_MS + 40_000
    await clock.wait_for_sleepers(1)
    await clock.advance(5)
    fourth = execution_id("report", START_MS + 40_000)
    await eventually(lambda: engine.get_execution(fourth), what="the first fire after resuming")
    assert await started_by(engine, "report") == [fourth]


async def test_trigger_starts_now_even_when_paused(engine: EngineService, schedules: ScheduleService) -> None:
    await schedules.create("report", every(paused=True))
    view, started = await schedules.trigger("report")
    assert started == "report-trigger-20231114T221320.000Z"
    assert await engine.get_execution(started) is not None
    assert view.state.recent[-1].outcome is Outcome.TRIGGERED


async def test_a_start_the_engine_refuses_is_recorded_as_failed(
    engine: EngineService, schedules: ScheduleService
) -> None:
    await schedules.create("report", ScheduleSpec.model_validate({"workflow": "gone", "interval": "10s"}))
    view, _ = await schedules.trigger("report")
    assert view.state.failed == 1
    assert "workflow 'gone' not found" in view.state.recent[-1].reason


async def test_create_refuses_a_taken_name_and_put_of_the_same_spec_changes_nothing(
    schedules: ScheduleService,
) -> None:
    created = await schedules.create("report", every())
    with pytest.raises(ScheduleExists):
        await schedules.create("report", every())
    again = await schedules.put("report", every())
    assert again.revision == created.revision
    changed = await schedules.put("report", every("1m"))
    assert changed.revision == created.revision + 1
    assert changed.spec.interval == "1m"


async def test_a_bad_name_is_refused_and_a_missing_schedule_is_not_found(schedules: ScheduleService) -> None:
    with pytest.raises(ScheduleInvalid, match="schedule name 'Report' is not valid"):
        await schedules.create("Report", every())
    with pytest.raises(ScheduleNotFound):
        await schedules.pause("nothing")
    with pytest.raises(ScheduleNotFound):
        await schedules.update("nothing", every())


async def test_a_deleted_schedule_fires_no_more(
    engine: EngineService, clock: FakeClock, schedules: ScheduleService
) -> None:
    await schedules.create("report", every())
    assert await schedules.delete("report") is True
    assert await schedules.delete("report") is False
    await clock.advance(30)
    await clock.wait_for_sleepers(0)
    assert await schedules.list() == []
    assert await started_by(engine, "report") == []
