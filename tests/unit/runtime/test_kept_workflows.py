"""An engine that is not split keeps its workflows: a start reads its spec from memory, not the store."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.runtime import Database, EngineService
from cerebelum_operator.runtime import engine_service as engine_module

SPEC: dict[str, Any] = {"timeline": ["gate"], "steps": {"gate": {"approval": {}}}}


class _CountingReads:
    """The store's `get_workflow`, counted."""

    def __init__(self, db: Database) -> None:
        self.calls = 0
        self._read = db.store.get_workflow
        db.store.get_workflow = self  # type: ignore[method-assign]

    def __call__(self, name: str) -> Any:
        self.calls += 1
        return self._read(name)


async def test_starts_read_a_workflow_the_engine_wrote_from_memory_and_see_its_next_version(
    engine: EngineService,
) -> None:
    reads = _CountingReads(engine.db)
    await engine.put_workflow("gated", SPEC)
    await engine.start("gated", {"n": 1}, execution_id="e1")
    await engine.start("gated", {"n": 2}, execution_id="e2")
    assert reads.calls == 0

    changed = {**SPEC, "timeline": ["gate", "again"], "steps": {**SPEC["steps"], "again": {"approval": {}}}}
    await engine.put_workflow("gated", changed)
    await engine.start("gated", {"n": 3}, execution_id="e3")
    e1, e3 = await engine.get_execution("e1"), await engine.get_execution("e3")
    assert e1 is not None and e3 is not None and e3.spec == changed and e1.spec == SPEC
    assert reads.calls == 0


async def test_a_workflow_written_before_the_engine_started_is_read_once(engine: EngineService) -> None:
    reads = _CountingReads(engine.db)  # the fixture's engine: its workflow w was written before it started
    for n in range(3):
        await engine.start("w", {"n": n}, execution_id=f"e{n}")
    assert reads.calls == 1


async def test_an_engine_that_splits_the_shards_reads_the_store_on_every_start(engine: EngineService) -> None:
    """Another engine of the split may have changed the workflow: nothing is kept."""
    engine.set_ownership(lambda shard: True)
    await engine.put_workflow("gated", SPEC)
    reads = _CountingReads(engine.db)
    for n in range(3):
        await engine.start("gated", {"n": n}, execution_id=f"e{n}")
    assert reads.calls == 3


async def test_an_older_version_read_late_never_replaces_a_newer_one(engine: EngineService) -> None:
    first = await engine.put_workflow("gated", SPEC)
    newer = await engine.put_workflow("gated", {**SPEC, "description": "v2"})
    engine._keep_workflow(first)  # a read of version 1 that finished after the write of version 2
    assert await engine.get_workflow("gated") == newer


async def test_the_kept_workflows_are_bounded_by_their_bytes(
    engine: EngineService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "MAX_KEPT_WORKFLOW_BYTES", 300)
    big = {**SPEC, "description": "x" * 200}
    await engine.put_workflow("a", big)
    await engine.put_workflow("b", big)  # a is forgotten: both would weigh over 300 bytes
    reads = _CountingReads(engine.db)
    assert (await engine.get_workflow("b")) is not None and reads.calls == 0
    assert (await engine.get_workflow("a")) is not None and reads.calls == 1
