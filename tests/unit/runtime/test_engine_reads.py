"""The engine is the one door to the store for the layers above it (API, operator, server)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import cerebelum_operator
from cerebelum_operator.runtime import Database, EngineService, FakeClock
from cerebelum_operator.store import open_store

SPEC = {"timeline": ["gate"], "steps": {"gate": {"approval": {}}}}
PACKAGE = Path(cerebelum_operator.__file__).parent


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[EngineService]:
    store = open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    store.migrate()
    db = Database(store)
    try:
        yield EngineService(db, clock=FakeClock(start_ms=1_700_000_000_000))
    finally:
        db.close()


async def test_workflows_are_written_on_the_engine_clock_and_read_back(engine: EngineService) -> None:
    written = await engine.put_workflow("gated", SPEC)
    assert written.updated_at_ms == 1_700_000_000_000
    assert await engine.get_workflow("gated") == written
    assert [row.name for row in await engine.list_workflows()] == ["gated"]
    assert await engine.get_workflow("missing") is None


async def test_executions_and_their_history_are_read_through_the_engine(engine: EngineService) -> None:
    await engine.put_workflow("gated", SPEC)
    await engine.start("gated", {"n": 1}, execution_id="e1")
    row = await engine.get_execution("e1")
    assert row is not None and row.input == {"n": 1} and row.phase == "WaitingForApproval"
    assert [r.execution_id for r in await engine.list_executions(workflow="gated")] == ["e1"]
    assert await engine.list_executions(phase="Succeeded") == []
    history = await engine.load_history("e1")
    assert history and [r.seq for r in history] == list(range(1, len(history) + 1))
    assert [r.seq for r in await engine.load_history("e1", after_seq=1, limit=1)] == [2][: len(history) - 1]
    assert await engine.get_execution("missing") is None
    assert await engine.list_dead_letters() == []
    assert await engine.get_dead_letter("e1/gate/1") is None


@pytest.mark.parametrize("layer", ["api", "kube", "server", "cli"])
def test_no_layer_above_the_runtime_reaches_around_the_engine_into_the_store(layer: str) -> None:
    reaching = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bdb\.store\b|engine\.db\b", line)
    ]
    assert reaching == [], "use EngineService's reads and writes instead:\n" + "\n".join(reaching)
