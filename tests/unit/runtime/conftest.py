"""Fixtures of the runtime's unit tests: a real SQLite store behind an engine, on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from cerebelum_operator.runtime import Database, Dispatcher, EngineService, FakeClock
from cerebelum_operator.store import open_store


def sqlite_database(path: Path, **workflows: Mapping[str, Any]) -> Database:
    """A real SQLite store at `path`, migrated, holding `workflows` (by name); two on one path are two
    engines that share their store, as engines that split the shards do."""
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    for name, spec in workflows.items():
        store.put_workflow(name, dict(spec), now_ms=0)
    return Database(store)


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
