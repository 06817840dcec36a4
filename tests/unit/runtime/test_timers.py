"""Durable timers fire on the engine's clock: a fake one moves them, no real time passes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cerebelum_operator.runtime import Database, EngineService, FakeClock, TimerService
from cerebelum_operator.store import open_store

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
