"""The outbox (messages between executions) and continue-as-new chains, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from cerebelum_operator.engine import events as ev
from cerebelum_operator.engine.actions import SendMessage
from cerebelum_operator.store import ConcurrencyConflict, EventStore, NewExecution

from .helpers import Appender


def message(message_id: str, target: str, seq: int) -> SendMessage:
    return SendMessage(message_id, "start", target, seq, {"workflow": "w", "input": {"n": seq}})


def test_a_decisions_messages_are_kept_with_its_events_and_leave_when_delivered(
    store: EventStore, appender: Appender
) -> None:
    appender.start("parent")
    appender.append("parent", ev.StepSkipped("a"), actions=[message("m2", "child-b", 3), message("m1", "child-a", 2)])

    pending = store.pending_messages(limit=10)
    assert [(m.message_id, m.execution_id, m.kind, m.target, m.seq) for m in pending] == [
        ("m1", "parent", "start", "child-a", 2),
        ("m2", "parent", "start", "child-b", 3),
    ]
    assert pending[0].body == {"workflow": "w", "input": {"n": 2}}

    store.delete_message("m1")
    assert [m.message_id for m in store.pending_messages(limit=10)] == ["m2"]


def test_a_decision_that_loses_its_conflict_leaves_no_message(store: EventStore, appender: Appender) -> None:
    appender.start("parent")
    with pytest.raises(ConcurrencyConflict):
        store.append(
            "parent",
            expected_seq=7,
            events=[ev.RecordedEvent(8, 2_000, ev.StepSkipped("a"))],
            actions=[message("m1", "child", 8)],
            summary=Appender.summary(),
        )
    assert store.pending_messages(limit=10) == []


def test_the_latest_run_of_a_chain_is_found_by_its_first_runs_id(store: EventStore, appender: Appender) -> None:
    appender.start("loop")
    assert store.latest_run("loop") is None
    for run in (2, 3):
        store.append(
            f"loop:run-{run}",
            expected_seq=0,
            events=[ev.RecordedEvent(1, 1_000, ev.ExecutionStarted("w", None, "h", first_run_id="loop", run=run))],
            actions=[],
            summary=Appender.summary(),
            new_execution=NewExecution("w", {}, "h", None, chain=("loop", run)),
        )
    assert store.latest_run("loop") == "loop:run-3"
