"""An engine that shares its store learns a workflow's pause, and its lifting, from the store
(`FlowControlService.refresh_pauses`): what engines that split the shards do when another engine's
word did not reach them. A real SQLite store, on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cerebelum_operator.runtime import EngineService, FakeClock, FlowControlService
from tests.support.waiting import eventually
from tests.unit.runtime.conftest import sqlite_database

SPEC = {"taskQueue": "q", "timeline": ["a"]}


class Engine:
    def __init__(self, path: Path, clock: FakeClock) -> None:
        self.db = sqlite_database(path, w=SPEC)
        self.engine = EngineService(self.db, clock=clock)
        self.flow = FlowControlService(self.db, self.engine, clock=clock)


@pytest.fixture
async def engines(tmp_path: Path) -> AsyncIterator[tuple[Engine, Engine]]:
    clock = FakeClock()
    first, other = Engine(tmp_path / "engine.db", clock), Engine(tmp_path / "engine.db", clock)
    for engine in (first, other):
        await engine.flow.start()
    try:
        yield first, other
    finally:
        for engine in (first, other):
            await engine.flow.stop()
            engine.db.close()


async def test_a_pause_another_engine_wrote_holds_new_executions_here_once_read_and_its_lifting_resumes_them(
    engines: tuple[Engine, Engine],
) -> None:
    first, other = engines
    await first.flow.pause_workflow("w", reason="a bad release", by="ops")
    assert other.flow.pause_of("w") is None, "not read yet"

    assert await other.flow.refresh_pauses() == ("w",)
    assert await other.flow.refresh_pauses() == (), "nothing changed since"
    await other.engine.start("w", {}, execution_id="e1")
    assert await shown(other, "e1") == "Paused"

    # Lifted by the first engine, whose word never came here: the store says so, and this engine
    # resumes what the pause held of its own.
    await first.db.run(first.db.store.delete_workflow_pause, "w")
    assert await other.flow.refresh_pauses() == ("w",)
    assert other.flow.pause_of("w") is None
    assert await shown(other, "e1") == "Running"


async def shown(engine: Engine, execution_id: str) -> str:
    """The phase the store shows (what the API and the CLI show)."""
    row = await engine.engine.get_execution(execution_id)
    assert row is not None
    return str(row.phase)


async def test_a_refresh_that_read_the_store_just_before_a_pause_does_not_drop_it(
    engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, other = engines
    flow, db = other.flow, other.db
    read_done, release = asyncio.Event(), asyncio.Event()
    run = db.run

    async def slow_list(work: Any, *args: Any, **kwargs: Any) -> Any:
        result = await run(work, *args, **kwargs)
        if work == db.store.list_workflow_pauses:  # the refresh's read: held until the pause is under way
            read_done.set()
            await release.wait()
        return result

    monkeypatch.setattr(db, "run", slow_list)
    refreshing = asyncio.create_task(flow.refresh_pauses())
    await read_done.wait()  # it read the store: no pause there yet
    pausing = asyncio.create_task(flow.pause_workflow("w", reason="a bad release", by="ops"))
    # Let the pause go as far as it may meanwhile: to its end, unless it waits for the refresh.
    await eventually(lambda: pausing.done() or flow._pausing.locked(), what="the pause done or waiting")
    release.set()
    await asyncio.gather(refreshing, pausing)

    assert flow.pause_of("w") is not None, "the pause the stale read never saw is still in force here"
