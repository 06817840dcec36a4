"""The retention period on a real SQLite store and a fake clock (issue 19): an execution that ended
that long ago is exported, then removed; asking for it says when and where it went; its id is not
started again; running ones are left alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.runtime import EngineService, ExecutionNotFound, FakeClock, RetentionService
from cerebelum_operator.runtime.engine_service import ExecutionConflict
from cerebelum_operator.runtime.retention import export_path

SPEC = {"taskQueue": "q", "timeline": ["pause"], "steps": {"pause": {"timer": {"duration": "1s"}}}}
DAY_MS = 86_400_000


async def ended(engine: EngineService, clock: FakeClock, execution_id: str) -> None:
    """Start an execution whose only step sleeps a second, and fire its timer as the timer service would."""
    await engine.start("w", {"n": 1}, execution_id=execution_id)
    await clock.advance(1.5)
    timers = engine.db.store.due_timers(until_ms=clock.now_ms(), limit=10)
    for timer in (t for t in timers if t.execution_id == execution_id):
        await engine.handle(execution_id, cmd.TimerFired(timer.timer_id))
    assert (await engine.state_of(execution_id)).phase.terminal


async def test_an_execution_ended_a_period_ago_is_exported_then_removed_and_asking_for_it_says_where(
    engine: EngineService, clock: FakeClock, tmp_path: Path
) -> None:
    await ended(engine, clock, "done-1")
    await engine.start("w", {}, execution_id="still-running")
    history = await engine.load_history("done-1")
    service = RetentionService(engine.db, engine, clock=clock, period_ms=DAY_MS, export_dir=tmp_path / "exports")

    assert await service.sweep() == 0, "not a day old yet"
    await clock.advance(DAY_MS / 1000 + 1)
    assert await service.sweep() == 1

    exported = export_path(tmp_path / "exports", "done-1")
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [(line["seq"], line["type"]) for line in lines] == [(e.seq, e.event.kind) for e in history]
    assert lines[0]["data"]["input"] == {"n": 1}
    with pytest.raises(ExecutionNotFound) as gone:
        await engine.state_of("done-1")
    message = str(gone.value)
    assert "was removed from the store on" in message and f"exported to {exported}" in message
    assert not (await engine.state_of("still-running")).phase.terminal

    with pytest.raises(ExecutionConflict, match="its id is not used again"):
        await engine.start("w", {"n": 1}, execution_id="done-1")


async def test_without_an_export_directory_the_message_says_the_history_was_not_kept(
    engine: EngineService, clock: FakeClock
) -> None:
    await ended(engine, clock, "done-2")
    await clock.advance(2 * DAY_MS / 1000)
    await RetentionService(engine.db, engine, clock=clock, period_ms=DAY_MS).sweep()
    with pytest.raises(ExecutionNotFound, match="its history was not exported"):
        await engine.state_of("done-2")


def test_the_sweep_interval_is_a_tenth_of_the_period_between_a_second_and_a_minute(engine: EngineService) -> None:
    def interval(period_ms: int) -> float:
        return RetentionService(engine.db, engine, clock=FakeClock(), period_ms=period_ms).interval_s

    assert (interval(2_000), interval(300_000), interval(30 * DAY_MS)) == (1.0, 30.0, 60.0)
