"""A start under an existing execution's id: the same request gets the first execution, another is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cerebelum_operator.runtime import Database, EngineService, ExecutionConflict, SystemClock
from cerebelum_operator.store import open_store

SPEC = {"timeline": ["gate"], "steps": {"gate": {"approval": {}}}}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[EngineService]:
    store = open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    store.migrate()
    db = Database(store)
    try:
        await db.run(store.put_workflow, "gated", SPEC, now_ms=0)
        await db.run(store.put_workflow, "other", SPEC, now_ms=0)
        yield EngineService(db, clock=SystemClock())
    finally:
        db.close()


async def test_a_start_with_an_existing_id_and_another_input_is_refused_naming_the_id(engine: EngineService) -> None:
    first = await engine.start("gated", {"n": 1}, execution_id="e1")
    again = await engine.start("gated", {"n": 1}, execution_id="e1")  # a retried start: the first one

    with pytest.raises(ExecutionConflict, match="execution 'e1' already exists with a different input"):
        await engine.start("gated", {"n": 2}, execution_id="e1")
    with pytest.raises(ExecutionConflict, match="execution 'e1' already exists, of workflow 'gated', not 'other'"):
        await engine.start("other", {"n": 1}, execution_id="e1")

    stored = await engine.get_execution("e1")
    assert again.created_at_ms == first.created_at_ms and again.input == {"n": 1}
    assert stored is not None and stored.input == {"n": 1}


DEFAULTED = {**SPEC, "input": {"type": "object", "properties": {"region": {"default": "eu"}}}}


async def test_a_retried_start_is_recognised_though_the_execution_recorded_its_input_with_defaults(
    engine: EngineService,
) -> None:
    await engine.db.run(engine.db.store.put_workflow, "defaulted", DEFAULTED, now_ms=0)
    first = await engine.start("defaulted", {"n": 1}, execution_id="d1")
    await engine.db.run(engine.db.store.put_workflow, "defaulted", SPEC, now_ms=1)  # the workflow changed since

    again = await engine.start("defaulted", {"n": 1}, execution_id="d1")

    assert first.input == again.input == {"n": 1, "region": "eu"}
    assert again.created_at_ms == first.created_at_ms
    with pytest.raises(ExecutionConflict, match="already exists with a different input"):
        await engine.start("defaulted", {"n": 1, "region": "us"}, execution_id="d1")
