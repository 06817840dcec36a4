"""Tasks, timers and dead letters as the dispatcher, the timer loop and the CLI read them."""

from __future__ import annotations

from cerebelum_operator.engine.actions import AddDeadLetter, CancelTask, LeaseTask, ResolveDeadLetter, StartTimer
from cerebelum_operator.store import EventStore, TimerRow

from .helpers import Appender


def test_load_tasks_returns_all_tasks_or_those_of_one_state(store: EventStore, appender: Appender) -> None:
    appender.start("e1", actions=[appender.schedule("q1"), appender.schedule("l1"), appender.schedule("q2")])
    appender.append("e1", actions=[LeaseTask("l1", "w1", 12_000, 32_000)])
    assert sorted(t.token for t in store.load_tasks()) == ["l1", "q1", "q2"]
    assert sorted(t.token for t in store.load_tasks(state="queued")) == ["q1", "q2"]
    assert [t.token for t in store.load_tasks(state="leased")] == ["l1"]


def test_get_task_returns_none_for_an_unknown_token(store: EventStore) -> None:
    assert store.get_task("nope") is None


def test_extend_lease_extends_a_task_leased_by_the_same_worker(store: EventStore, appender: Appender) -> None:
    appender.start("e1", actions=[appender.schedule("t1")])
    appender.append("e1", actions=[LeaseTask("t1", "w1", 12_000, 32_000)])

    task = store.extend_lease("t1", worker_id="w1", lease_expires_at_ms=22_000, progress={"pct": 50})

    assert task is not None
    assert (task.lease_expires_at_ms, task.progress, task.worker_id, task.attempt_deadline_ms) == (
        22_000,
        {"pct": 50},
        "w1",
        32_000,
    )
    assert store.get_task("t1") == task


def test_extend_lease_refuses_another_worker_a_queued_task_and_an_unknown_token(
    store: EventStore, appender: Appender
) -> None:
    appender.start("e1", actions=[appender.schedule("leased"), appender.schedule("queued")])
    appender.append("e1", actions=[LeaseTask("leased", "w1", 12_000, 32_000)])
    before = store.load_tasks()

    assert store.extend_lease("leased", worker_id="w2", lease_expires_at_ms=99_000, progress=None) is None
    assert store.extend_lease("queued", worker_id="w1", lease_expires_at_ms=99_000, progress=None) is None
    assert store.extend_lease("unknown", worker_id="w1", lease_expires_at_ms=99_000, progress=None) is None
    assert store.load_tasks() == before


def test_extend_lease_reports_a_requested_cancellation(store: EventStore, appender: Appender) -> None:
    appender.start("e1", actions=[appender.schedule("t1")])
    appender.append("e1", actions=[LeaseTask("t1", "w1", 12_000, 32_000), CancelTask("t1")])
    task = store.extend_lease("t1", worker_id="w1", lease_expires_at_ms=22_000, progress=None)
    assert task is not None
    assert task.cancel_requested is True


def test_delete_task_removes_it_and_ignores_an_unknown_token(store: EventStore, appender: Appender) -> None:
    appender.start("e1", actions=[appender.schedule("t1")])
    store.delete_task("t1")
    store.delete_task("t1")
    assert store.load_tasks() == []


def test_due_timers_are_soonest_first_up_to_the_limit_and_time(store: EventStore, appender: Appender) -> None:
    appender.start("e1", actions=[StartTimer("late", 9_000), StartTimer("b", 5_000), StartTimer("a", 5_000)])
    appender.start("e2", actions=[StartTimer("first", 1_000), StartTimer("edge", 6_000)])

    assert store.due_timers(until_ms=6_000, limit=10) == [
        TimerRow("first", "e2", 1_000),
        TimerRow("a", "e1", 5_000),
        TimerRow("b", "e1", 5_000),
        TimerRow("edge", "e2", 6_000),
    ]
    assert [t.timer_id for t in store.due_timers(until_ms=6_000, limit=2)] == ["first", "a"]
    assert store.due_timers(until_ms=999, limit=10) == []


def test_delete_timer_removes_it_and_ignores_an_unknown_id(store: EventStore, appender: Appender) -> None:
    appender.start("e1", actions=[StartTimer("t1", 1_000)])
    store.delete_timer("t1")
    store.delete_timer("t1")
    assert store.due_timers(until_ms=10_000, limit=10) == []


def test_list_dead_letters_hides_resolved_ones_unless_asked(store: EventStore, appender: Appender) -> None:
    appender.start("e1")
    appender.start("e2")
    appender.append("e1", actions=[AddDeadLetter("d1", "a", 3, "boom")], at_ms=3_000)
    appender.append("e2", actions=[AddDeadLetter("d2", "b", 1, "bang")], at_ms=4_000)
    appender.append("e1", actions=[AddDeadLetter("d3", "c", 2, "oops")], at_ms=5_000)
    appender.append("e1", actions=[ResolveDeadLetter("d1")], at_ms=6_000)

    assert [d.dead_letter_id for d in store.list_dead_letters()] == ["d2", "d3"]
    assert [d.dead_letter_id for d in store.list_dead_letters(include_resolved=True)] == ["d1", "d2", "d3"]
    assert [d.dead_letter_id for d in store.list_dead_letters(execution_id="e1")] == ["d3"]
    assert [d.dead_letter_id for d in store.list_dead_letters(execution_id="e1", include_resolved=True)] == [
        "d1",
        "d3",
    ]


def test_get_dead_letter_returns_none_for_an_unknown_id(store: EventStore) -> None:
    assert store.get_dead_letter("nope") is None
