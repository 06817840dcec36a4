"""History listeners hear every committed event once, in order, before the change listeners."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from cerebelum_operator.engine import ExecutionState
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.events import RecordedEvent
from cerebelum_operator.runtime import Database, EngineService, FakeClock
from cerebelum_operator.store import open_store

SPEC = {"timeline": ["gate", "after"], "steps": {"gate": {"approval": {}}}}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[EngineService]:
    store = open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    store.migrate()
    db = Database(store)
    try:
        yield EngineService(db, clock=FakeClock(start_ms=1_700_000_000_000))
    finally:
        db.close()


async def test_history_listeners_hear_each_committed_event_once_in_order_before_the_state(
    engine: EngineService,
) -> None:
    heard: list[tuple[str, int]] = []
    order: list[str] = []

    def on_events(execution_id: str, events: Sequence[RecordedEvent]) -> None:
        heard.extend((execution_id, recorded.seq) for recorded in events)
        order.append("events")

    def on_change(execution_id: str, state: ExecutionState) -> None:
        assert heard and heard[-1] == (execution_id, state.last_seq), "the events before the state they led to"
        order.append("state")

    engine.add_history_listener(on_events)
    engine.add_change_listener(on_change)
    await engine.put_workflow("gated", SPEC)
    await engine.start("gated", None, execution_id="e1")
    await engine.handle("e1", cmd.Approve(step="gate", approver="alice"))
    await engine.handle("e1", cmd.Cancel(reason="enough"))

    history = await engine.load_history("e1")
    assert heard == [("e1", recorded.seq) for recorded in history]
    assert order == ["events", "state"] * 3
