"""The store's side of the retention period (issue 19): ended executions found by age, removed with
everything of them in one transaction, and remembered, so their ids are never started again."""

from __future__ import annotations

import pytest

from cerebelum_operator.engine import actions as act
from cerebelum_operator.engine import events as ev
from cerebelum_operator.store import EventStore, ExecutionRetired, RetiredExecution

from .helpers import Appender


def _ended(appender: Appender, execution_id: str, *, at_ms: int, phase: str = "Succeeded") -> None:
    appender.start(execution_id, at_ms=at_ms)
    appender.append(execution_id, ev.ExecutionSucceeded(output=1), at_ms=at_ms, phase=phase)


def test_ended_executions_are_found_oldest_first_and_running_ones_never(store: EventStore, appender: Appender) -> None:
    _ended(appender, "old", at_ms=1_000)
    _ended(appender, "older", at_ms=500, phase="Failed")
    _ended(appender, "recent", at_ms=9_000)
    appender.start("running", at_ms=100)

    assert store.finished_before(5_000, limit=10) == ["older", "old"]
    assert store.finished_before(5_000, limit=1) == ["older"]
    assert store.finished_before(100, limit=10) == []


def test_retiring_removes_the_execution_and_everything_of_it_and_leaves_a_record(
    store: EventStore, appender: Appender
) -> None:
    appender.start("gone", at_ms=1_000)
    appender.append(
        "gone",
        ev.SleepStarted("nap", "gone/timer/nap/2", 9_999_999),
        actions=[
            act.StartTimer("gone/timer/nap/2", 9_999_999),
            act.AddDeadLetter("gone/dl/1", "charge", 3, "Boom: no"),
        ],
    )
    appender.append("gone", ev.ExecutionSucceeded(output=None), at_ms=4_000, phase="Succeeded")
    appender.start("kept", at_ms=1_000)

    retired = store.retire("gone", retired_at_ms=50_000, export="/exports/gone.jsonl")

    assert retired == RetiredExecution("gone", "orders", "Succeeded", 4_000, 50_000, "/exports/gone.jsonl")
    assert store.get_retired("gone") == retired
    assert store.get_execution("gone") is None
    assert store.load_history("gone") == []
    assert store.list_dead_letters(execution_id="gone") == []
    assert all(timer.execution_id != "gone" for timer in store.due_timers(until_ms=10_000_000, limit=100))
    assert store.get_execution("kept") is not None and store.get_retired("kept") is None


def test_a_running_execution_is_not_retired(store: EventStore, appender: Appender) -> None:
    appender.start("busy")
    assert store.retire("busy", retired_at_ms=1, export=None) is None
    assert store.get_execution("busy") is not None


def test_a_retired_id_is_never_started_again(store: EventStore, appender: Appender) -> None:
    _ended(appender, "once", at_ms=1_000)
    store.retire("once", retired_at_ms=2_000, export=None)

    with pytest.raises(ExecutionRetired):
        Appender(store).start("once")
    assert store.get_execution("once") is None
