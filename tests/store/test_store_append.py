"""`append`: events, the execution index and actions change together, or not at all."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.exc import IntegrityError

from cerebelum_operator.engine import events as ev
from cerebelum_operator.engine.actions import (
    AddDeadLetter,
    CancelTask,
    CancelTimer,
    DeleteTask,
    LeaseTask,
    ResolveDeadLetter,
    StartTimer,
)
from cerebelum_operator.store import (
    ConcurrencyConflict,
    EventStore,
    ExecutionExists,
    ExecutionRow,
    NewExecution,
    TaskRow,
    TimerRow,
    open_store,
)

from .helpers import Appender


def _scheduled(token: str, step: str = "a") -> ev.StepScheduled:
    return ev.StepScheduled(step=step, attempt=1, poll=0, token=token, task_queue="default", visible_at_ms=2_000)


def test_append_with_a_new_execution_creates_its_row_and_first_events(store: EventStore, appender: Appender) -> None:
    started = ev.ExecutionStarted(workflow="orders", input={"id": 1}, spec_hash="h1")
    store.append(
        "e1",
        expected_seq=0,
        events=[ev.RecordedEvent(1, 1_000, started), ev.RecordedEvent(2, 1_000, _scheduled("t1"))],
        actions=[appender.schedule("t1")],
        summary=appender.summary(at_ms=1_000, current_steps=["a"]),
        new_execution=NewExecution(workflow="orders", spec={"steps": ["a"]}, spec_hash="h1", input={"id": 1}),
    )

    assert store.get_execution("e1") == ExecutionRow(
        execution_id="e1",
        workflow="orders",
        spec={"steps": ["a"]},
        spec_hash="h1",
        input={"id": 1},
        phase="Running",
        current_steps=["a"],
        output=None,
        error=None,
        wake_at_ms=None,
        created_at_ms=1_000,
        updated_at_ms=1_000,
        last_seq=2,
    )
    assert store.load_history("e1") == [
        ev.RecordedEvent(1, 1_000, started),
        ev.RecordedEvent(2, 1_000, _scheduled("t1")),
    ]


def test_append_updates_the_execution_index_row(store: EventStore, appender: Appender) -> None:
    appender.start("e1")
    appender.append(
        "e1",
        ev.ExecutionSucceeded(output={"total": 3}),
        at_ms=5_000,
        phase="Succeeded",
        current_steps=[],
        output={"total": 3},
    )
    execution = store.get_execution("e1")
    assert execution is not None
    assert (execution.phase, execution.output, execution.updated_at_ms, execution.last_seq) == (
        "Succeeded",
        {"total": 3},
        5_000,
        2,
    )
    assert execution.created_at_ms == 1_000


def test_append_stores_error_and_wake_time_in_the_index_row(store: EventStore, appender: Appender) -> None:
    appender.start("e1")
    appender.append("e1", ev.ExecutionFailed(reason="boom", step="a"), phase="Failed", error="boom", wake_at_ms=9)
    execution = store.get_execution("e1")
    assert execution is not None
    assert (execution.phase, execution.error, execution.wake_at_ms) == ("Failed", "boom", 9)


def test_every_event_kind_round_trips_through_the_history(store: EventStore, appender: Appender) -> None:
    appender.start("e1", input={"nested": {"list": [1, 2.5, None, True, "s"]}})
    history = [
        _scheduled("t1"),
        ev.StepStarted(step="a", attempt=1, token="t1", worker_id="w1"),
        ev.StepCompleted(step="a", attempt=1, token="t1", output={"x": [1]}, rule="r", goto="b"),
        ev.StepFailed(step="b", attempt=1, token="t2", error_type="E", message="m", retryable=True, retry_at_ms=5),
        ev.StepRetryAfter(step="b", attempt=2, token="t3", retry_at_ms=7),
        ev.StepDeadLettered(step="b", attempt=3, dead_letter_id="d1", error_type="E", message="m"),
        ev.DeadLetterRedriven(step="b", dead_letter_id="d1"),
        ev.SleepStarted(step="s", timer_id="tm1", wake_at_ms=100),
        ev.SleepEnded(step="s", timer_id="tm1"),
        ev.ApprovalRequested(step="p", approval_kind="manual", data={"q": "ok?"}, timer_id=None, timeout_at_ms=None),
        ev.ApprovalGranted(step="p", approver="ann", payload={"ok": True}),
        ev.ApprovalRejected(step="p", approver="bob", reason="no"),
        ev.ApprovalTimedOut(step="p"),
        ev.JumpTaken(rule="r", from_step="a", to_step="c"),
        ev.ExecutionCancelled(reason="user"),
    ]
    appender.append("e1", *history)
    assert [r.event for r in store.load_history("e1", after_seq=1)] == history
    assert [r.seq for r in store.load_history("e1")] == list(range(1, len(history) + 2))


def test_append_rejects_events_whose_seq_does_not_follow_expected_seq(store: EventStore, appender: Appender) -> None:
    appender.start("e1")
    with pytest.raises(ValueError, match="seq"):
        store.append(
            "e1",
            expected_seq=1,
            events=[ev.RecordedEvent(3, 2_000, ev.ApprovalTimedOut(step="p"))],
            actions=[],
            summary=appender.summary(),
        )
    assert len(store.load_history("e1")) == 1


def test_append_rejects_a_new_execution_that_does_not_start_at_seq_zero(store: EventStore, appender: Appender) -> None:
    with pytest.raises(ValueError, match="seq 0"):
        store.append(
            "e1",
            expected_seq=3,
            events=[ev.RecordedEvent(4, 1, ev.ExecutionStarted(workflow="w", input=None, spec_hash="h"))],
            actions=[],
            summary=appender.summary(),
            new_execution=NewExecution(workflow="w", spec={}, spec_hash="h", input=None),
        )
    assert store.get_execution("e1") is None


# -- actions -------------------------------------------------------------------------------------------------
def test_schedule_task_inserts_a_queued_task_of_the_executions_workflow(store: EventStore, appender: Appender) -> None:
    appender.start("e1", workflow="billing", actions=[appender.schedule("t0")])
    appender.append("e1", _scheduled("t1"), actions=[appender.schedule("t1", step="b", task_queue="gpu")])
    assert store.get_task("t1") == TaskRow(
        token="t1",
        execution_id="e1",
        step="b",
        attempt=1,
        poll=0,
        task_queue="gpu",
        arguments={"n": 1, "tags": ["x", "y"]},
        visible_at_ms=2_000,
        timeout_ms=30_000,
        lease_ms=10_000,
        heartbeat_required=True,
        sticky_worker_id=None,
        state="queued",
        worker_id=None,
        lease_expires_at_ms=None,
        attempt_deadline_ms=None,
        cancel_requested=False,
        progress=None,
        workflow="billing",
    )
    assert {(t.token, t.workflow) for t in store.load_tasks()} == {("t0", "billing"), ("t1", "billing")}


def test_lease_task_marks_the_task_leased_by_the_worker(store: EventStore, appender: Appender) -> None:
    appender.start("e1", actions=[appender.schedule("t1")])
    appender.append(
        "e1",
        ev.StepStarted(step="a", attempt=1, token="t1", worker_id="w1"),
        actions=[LeaseTask(token="t1", worker_id="w1", lease_expires_at_ms=12_000, attempt_deadline_ms=32_000)],
    )
    task = store.get_task("t1")
    assert task is not None
    assert (task.state, task.worker_id, task.lease_expires_at_ms, task.attempt_deadline_ms) == (
        "leased",
        "w1",
        12_000,
        32_000,
    )


def test_delete_task_removes_the_task_and_ignores_an_absent_one(store: EventStore, appender: Appender) -> None:
    appender.start("e1", actions=[appender.schedule("t1"), appender.schedule("t2")])
    appender.append("e1", actions=[DeleteTask(token="t1"), DeleteTask(token="never-existed")])
    assert [t.token for t in store.load_tasks()] == ["t2"]


def test_cancel_task_deletes_a_queued_task_and_flags_a_leased_one(store: EventStore, appender: Appender) -> None:
    appender.start("e1", actions=[appender.schedule("queued"), appender.schedule("leased")])
    appender.append("e1", actions=[LeaseTask("leased", "w1", 12_000, 32_000)])
    appender.append("e1", actions=[CancelTask("queued"), CancelTask("leased"), CancelTask("absent")])
    assert store.get_task("queued") is None
    leased = store.get_task("leased")
    assert leased is not None
    assert (leased.state, leased.cancel_requested) == ("leased", True)


def test_start_timer_inserts_or_replaces_and_cancel_timer_deletes(store: EventStore, appender: Appender) -> None:
    appender.start("e1", actions=[StartTimer("tm1", 5_000), StartTimer("tm2", 6_000)])
    appender.append("e1", actions=[StartTimer("tm1", 7_000), CancelTimer("tm2"), CancelTimer("absent")])
    assert store.due_timers(until_ms=10_000, limit=10) == [TimerRow("tm1", "e1", 7_000)]


def test_add_and_resolve_dead_letter_use_the_append_time(store: EventStore, appender: Appender) -> None:
    appender.start("e1")
    appender.append("e1", actions=[AddDeadLetter("d1", step="a", attempt=3, error="boom")], at_ms=3_000)
    letter = store.get_dead_letter("d1")
    assert letter is not None
    assert (letter.execution_id, letter.step, letter.attempt, letter.error, letter.created_at_ms) == (
        "e1",
        "a",
        3,
        "boom",
        3_000,
    )
    assert letter.resolved_at_ms is None

    appender.append("e1", actions=[ResolveDeadLetter("d1")], at_ms=4_000)
    resolved = store.get_dead_letter("d1")
    assert resolved is not None
    assert resolved.resolved_at_ms == 4_000


def test_actions_apply_in_the_order_given(store: EventStore, appender: Appender) -> None:
    appender.start("e1")
    appender.append(
        "e1",
        actions=[
            appender.schedule("t1"),
            DeleteTask("t1"),
            appender.schedule("t1"),
            LeaseTask("t1", "w1", 12_000, 32_000),
            CancelTask("t1"),
            StartTimer("tm1", 5_000),
            CancelTimer("tm1"),
            StartTimer("tm1", 6_000),
        ],
    )
    task = store.get_task("t1")
    assert task is not None
    assert (task.state, task.cancel_requested) == ("leased", True)
    assert store.due_timers(until_ms=10_000, limit=10) == [TimerRow("tm1", "e1", 6_000)]


# -- conflicts ---------------------------------------------------------------------------------------------
def test_append_rejects_a_stale_expected_seq_with_a_conflict(store: EventStore, appender: Appender) -> None:
    appender.start("e1", actions=[appender.schedule("t1")])
    appender.append("e1", ev.StepStarted(step="a", attempt=1, token="t1", worker_id="w1"))
    before = (store.get_execution("e1"), store.load_history("e1"), store.load_tasks())

    with pytest.raises(ConcurrencyConflict, match="is at seq 2, not 1"):
        store.append(
            "e1",
            expected_seq=1,
            events=[ev.RecordedEvent(2, 3_000, ev.ExecutionCancelled(reason="late"))],
            actions=[DeleteTask("t1"), appender.schedule("t2"), StartTimer("tm1", 1)],
            summary=appender.summary(phase="Cancelled", at_ms=3_000),
        )

    assert (store.get_execution("e1"), store.load_history("e1"), store.load_tasks()) == before
    assert store.due_timers(until_ms=10, limit=10) == []


def test_append_to_an_unknown_execution_is_a_conflict(store: EventStore, appender: Appender) -> None:
    with pytest.raises(ConcurrencyConflict, match="does not exist"):
        store.append(
            "ghost",
            expected_seq=0,
            events=[ev.RecordedEvent(1, 1, ev.ApprovalTimedOut(step="p"))],
            actions=[],
            summary=appender.summary(),
        )
    assert store.get_execution("ghost") is None
    assert store.load_history("ghost") == []


def test_creating_an_existing_execution_raises_and_writes_nothing(store: EventStore, appender: Appender) -> None:
    appender.start("e1", input={"first": True}, actions=[appender.schedule("t1")])
    before = (store.get_execution("e1"), store.load_history("e1"), store.load_tasks())

    with pytest.raises(ExecutionExists):
        store.append(
            "e1",
            expected_seq=0,
            events=[ev.RecordedEvent(1, 9, ev.ExecutionStarted(workflow="other", input=None, spec_hash="h2"))],
            actions=[appender.schedule("t2"), AddDeadLetter("d1", "a", 1, "x")],
            summary=appender.summary(at_ms=9),
            new_execution=NewExecution(workflow="other", spec={}, spec_hash="h2", input=None),
        )

    assert (store.get_execution("e1"), store.load_history("e1"), store.load_tasks()) == before
    assert store.list_dead_letters(include_resolved=True) == []


def test_a_failing_action_rolls_back_the_events_and_the_index_row(store: EventStore, appender: Appender) -> None:
    appender.start("e1", actions=[appender.schedule("t1")])
    before = (store.get_execution("e1"), store.load_history("e1"), store.load_tasks())

    with pytest.raises(IntegrityError):  # a second task with the same token
        appender.append("e1", _scheduled("t1"), actions=[StartTimer("tm1", 1), appender.schedule("t1")])

    assert (store.get_execution("e1"), store.load_history("e1"), store.load_tasks()) == before
    assert store.due_timers(until_ms=10, limit=10) == []


def test_of_two_racing_appends_with_the_same_expected_seq_exactly_one_wins(
    store: EventStore, appender: Appender, store_url: str
) -> None:
    appender.start("e1")
    stores = [store, open_store(store_url)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def race(racer: EventStore, n: int) -> None:
        barrier.wait()
        try:
            racer.append(
                "e1",
                expected_seq=1,
                events=[ev.RecordedEvent(2, 2_000, _scheduled(f"t{n}"))],
                actions=[appender.schedule(f"t{n}")],
                summary=appender.summary(),
            )
            outcomes.append("won")
        except ConcurrencyConflict:
            outcomes.append("conflict")

    try:
        threads = [threading.Thread(target=race, args=(s, n)) for n, s in enumerate(stores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stores[1].close()
    assert sorted(outcomes) == ["conflict", "won"]
    assert len(store.load_history("e1")) == 2
    assert len(store.load_tasks()) == 1


# -- reading executions and history -------------------------------------------------------------------------
def test_load_history_pages_with_after_seq_and_limit(store: EventStore, appender: Appender) -> None:
    appender.start("e1")
    appender.append("e1", *(ev.JumpTaken(rule=f"r{i}", from_step="a", to_step="b") for i in range(2, 8)))
    assert [r.seq for r in store.load_history("e1", after_seq=3)] == [4, 5, 6, 7]
    assert [r.seq for r in store.load_history("e1", after_seq=3, limit=2)] == [4, 5]
    assert [r.seq for r in store.load_history("e1", limit=3)] == [1, 2, 3]
    assert store.load_history("e1", after_seq=7) == []
    assert store.load_history("unknown") == []


def test_list_executions_is_newest_first_and_filters_by_workflow_and_phase(
    store: EventStore, appender: Appender
) -> None:
    appender.start("old", workflow="orders", at_ms=1_000)
    appender.start("mid", workflow="billing", at_ms=2_000)
    appender.start("new", workflow="orders", at_ms=3_000)
    appender.append("mid", ev.ExecutionSucceeded(output=None), phase="Succeeded", at_ms=9_000)

    assert [x.execution_id for x in store.list_executions()] == ["new", "mid", "old"]
    assert [x.execution_id for x in store.list_executions(workflow="orders")] == ["new", "old"]
    assert [x.execution_id for x in store.list_executions(phase="Running")] == ["new", "old"]
    assert [x.execution_id for x in store.list_executions(workflow="billing", phase="Succeeded")] == ["mid"]
    assert [x.execution_id for x in store.list_executions(limit=2)] == ["new", "mid"]
    assert store.list_executions(workflow="nope") == []


def test_active_execution_ids_leave_out_finished_executions(store: EventStore, appender: Appender) -> None:
    for n, phase in enumerate(["Pending", "Running", "Sleeping", "WaitingForApproval"]):
        appender.start(f"active-{n}", phase=phase, at_ms=n)
    for phase in ["Succeeded", "Failed", "Cancelled"]:
        appender.start(phase, phase=phase)
    assert sorted(store.active_execution_ids()) == ["active-0", "active-1", "active-2", "active-3"]


def test_get_execution_returns_none_for_an_unknown_id(store: EventStore) -> None:
    assert store.get_execution("nope") is None
