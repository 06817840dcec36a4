"""Fixtures of the runtime's unit tests: a real SQLite store behind an engine, on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cerebelum_operator.runtime import Database, Dispatcher, EngineService, FakeClock


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest) -> AsyncIterator[EngineService]:
    """An engine whose workflow ``w`` is the test module's ``SPEC``."""
    from cerebelum_operator.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    store.migrate()
    store.put_workflow("w", request.module.SPEC, now_ms=0)
    db = Database(store)
    try:
        yield EngineService(db, clock=clock)
    finally:
        db.close()


@pytest.fixture
async def dispatcher(engine: EngineService, clock: FakeClock) -> AsyncIterator[Dispatcher]:
    """The engine's dispatcher, started, its loops asleep on the fake clock."""
    dispatcher = Dispatcher(engine.db, engine, clock=clock)
    await dispatcher.start()
    await clock.wait_for_sleepers(2)  # the promote and sweep loops
    try:
        yield dispatcher
    finally:
        await dispatcher.stop()
