"""The dispatcher's task lifecycle (`TaskBook`), pure: every transition on plain integer times."""

from __future__ import annotations

from typing import Any

from cerebelum_operator.engine import actions as act
from cerebelum_operator.runtime.task_lifecycle import (
    MAX_POLL_RECORDS,
    POLL_RECORD_GRAIN_MS,
    GrantedTask,
    QueuedTask,
    TaskBook,
    Waiter,
)
from cerebelum_operator.store import TaskRow

T0 = 1_000_000
EVERY = None  # a waiter that takes tasks of every namespace


def schedule(
    token: str = "e/a/1/0/1",
    *,
    step: str = "a",
    queue: str = "q",
    visible_at: int = T0,
    sticky: str | None = None,
    lease_ms: int = 30_000,
    timeout_ms: int = 600_000,
    heartbeat_required: bool = False,
) -> act.ScheduleTask:
    return act.ScheduleTask(
        token=token,
        step=step,
        attempt=1,
        poll=0,
        task_queue=queue,
        arguments={"input": {}, "results": {}},
        visible_at_ms=visible_at,
        timeout_ms=timeout_ms,
        lease_ms=lease_ms,
        heartbeat_required=heartbeat_required,
        sticky_worker_id=sticky,
    )


def lease(token: str = "e/a/1/0/1", worker: str = "w1", *, at: int = T0, progress: Any = None) -> act.LeaseTask:
    return act.LeaseTask(token, worker, at + 30_000, at + 600_000, last_progress=progress)


def waiting(book: TaskBook, worker: str, *, steps: tuple[str, ...] = ("a",), queue: str = "q") -> Waiter:
    return book.wait(worker, queue, frozenset(steps), EVERY)


def take(book: TaskBook, worker: str, *, steps: tuple[str, ...] = ("a",), queue: str = "q") -> Any:
    return book.take(worker, queue, frozenset(steps), EVERY, now_ms=T0)


# -- scheduled -> ready -> offered --------------------------------------------------------


def test_a_task_visible_now_is_offered_to_the_waiting_poller_which_then_stops_waiting() -> None:
    book = TaskBook()
    waiter = waiting(book, "w1")
    offers = book.apply("e", "wf", schedule(), T0)
    assert [(o.waiter, o.item.token) for o in offers] == [(waiter, "e/a/1/0/1")]
    assert not waiter.listening
    assert book.apply("e", "wf", schedule("e/b/1/0/2"), T0) == [], "a waiter is offered one thing only"


def test_a_task_with_no_poller_waits_ready_and_a_later_poll_takes_it() -> None:
    book = TaskBook()
    assert book.apply("e", "wf", schedule(), T0) == []
    taken = take(book, "w1")
    assert isinstance(taken, QueuedTask) and taken.token == "e/a/1/0/1"
    assert take(book, "w2") is None, "taken once"


def test_a_poll_takes_only_the_steps_queue_and_namespaces_it_serves_oldest_first() -> None:
    book = TaskBook()
    book.apply("e1", "ns1/wf", schedule("e1/a/1/0/1"), T0)
    book.apply("e2", "ns2/wf", schedule("e2/a/1/0/1"), T0)
    book.apply("e3", "ns2/wf", schedule("e3/b/1/0/1", step="b"), T0)
    assert book.take("w", "other-queue", frozenset({"a", "b"}), EVERY, now_ms=T0) is None
    assert book.take("w", "q", frozenset({"c"}), EVERY, now_ms=T0) is None
    only_ns2 = book.take("w", "q", frozenset({"a", "b"}), frozenset({"ns2"}), now_ms=T0)
    assert only_ns2 is not None and only_ns2.token == "e2/a/1/0/1"
    oldest = book.take("w", "q", frozenset({"a", "b"}), EVERY, now_ms=T0)
    assert oldest is not None and oldest.token == "e1/a/1/0/1"


def test_a_task_in_backoff_is_offered_only_once_its_visible_time_comes() -> None:
    book = TaskBook()
    waiter = waiting(book, "w1")
    assert book.apply("e", "wf", schedule(visible_at=T0 + 5_000), T0) == []
    assert book.take_wakeup(), "the promote loop must look again: something comes due"
    assert book.next_due_ms() == T0 + 5_000
    assert book.promote(T0 + 4_999) == []
    offers = book.promote(T0 + 5_000)
    assert [(o.waiter, o.item.token) for o in offers] == [(waiter, "e/a/1/0/1")]


def test_a_poller_that_stopped_waiting_is_offered_nothing() -> None:
    book = TaskBook()
    waiter = waiting(book, "w1")
    book.stop_waiting(waiter)
    assert book.apply("e", "wf", schedule(), T0) == []
    assert take(book, "w2") is not None, "the task stayed ready"


# -- sticky routing and its fallback ------------------------------------------------------


def test_a_sticky_task_goes_to_its_previous_worker_even_when_another_waits_longer() -> None:
    book = TaskBook(sticky_window_ms=100)
    other = waiting(book, "w2")
    sticky = waiting(book, "w1")
    offers = book.apply("e", "wf", schedule(sticky="w1"), T0)
    assert [o.waiter for o in offers] == [sticky]
    assert other.listening


def test_inside_its_window_a_sticky_task_is_neither_offered_nor_taken_by_another_worker() -> None:
    book = TaskBook(sticky_window_ms=100)
    book.polled("q", ["a"], T0 - 5, worker_id="w1")  # w1 ran the previous step: it serves "a"
    other = waiting(book, "w2")
    assert book.apply("e", "wf", schedule(sticky="w1"), T0) == []
    assert book.take_wakeup()
    assert take(book, "w3") is None
    assert book.next_due_ms() == T0 + 100
    assert book.promote(T0 + 99) == []
    offers = book.promote(T0 + 100)  # the fallback: the window ended, anyone may take it
    assert [(o.waiter, o.item.token) for o in offers] == [(other, "e/a/1/0/1")]


def test_after_its_window_a_sticky_task_nobody_waits_for_is_taken_by_any_poll() -> None:
    book = TaskBook(sticky_window_ms=100)
    book.polled("q", ["a"], T0 - 5, worker_id="w1")
    book.apply("e", "wf", schedule(sticky="w1"), T0)
    assert book.promote(T0 + 100) == []
    taken = take(book, "w9")
    assert taken is not None and taken.token == "e/a/1/0/1"


def test_the_sticky_worker_takes_its_task_before_older_shared_ones() -> None:
    book = TaskBook(sticky_window_ms=100)
    book.polled("q", ["a"], T0 - 5, worker_id="w1")
    book.apply("e1", "wf", schedule("e1/a/1/0/1"), T0)
    book.apply("e2", "wf", schedule("e2/a/1/0/1", sticky="w1"), T0)
    taken = take(book, "w1")
    assert taken is not None and taken.token == "e2/a/1/0/1"


def test_a_sticky_window_starts_when_a_task_in_backoff_becomes_visible() -> None:
    book = TaskBook(sticky_window_ms=100)
    book.polled("q", ["a"], T0 - 5, worker_id="w1")
    book.apply("e", "wf", schedule(visible_at=T0 + 1_000, sticky="w1"), T0)
    other = waiting(book, "w2")
    assert book.promote(T0 + 1_000) == [], "visible now, but w1's for its window"
    assert [o.waiter for o in book.promote(T0 + 1_100)] == [other]


def test_a_task_is_not_kept_for_a_sticky_worker_that_never_polled_for_its_step() -> None:
    # A YAML workflow's next step on another kind of worker, or a code workflow's step whose
    # workflow worker runs no steps: waiting out the window for that worker would only delay it.
    book = TaskBook(sticky_window_ms=100)
    book.polled("q", ["workflow:f"], T0 - 5, worker_id="w1")
    book.polled("other-queue", ["a"], T0 - 5, worker_id="w1")
    other = waiting(book, "w2")
    offers = book.apply("e", "wf", schedule(sticky="w1"), T0)
    assert [(o.waiter, o.item.token) for o in offers] == [(other, "e/a/1/0/1")]


def test_a_task_is_not_kept_for_a_sticky_worker_the_book_never_saw() -> None:
    book = TaskBook(sticky_window_ms=100)
    book.apply("e", "wf", schedule(sticky="gone"), T0)
    taken = take(book, "w2")
    assert taken is not None and taken.token == "e/a/1/0/1"


# -- leased ---------------------------------------------------------------------------------


def test_a_committed_lease_makes_the_taken_task_leased_and_granted_with_the_previous_progress() -> None:
    book = TaskBook()
    book.apply("e", "ns/wf", schedule(), T0)
    task = take(book, "w1")
    assert isinstance(task, QueuedTask)
    assert book.granted(task, "ns/wf") is None, "nothing is granted before its lease commits"
    assert book.apply("e", "ns/wf", lease(progress={"done": 7}), T0) == []
    granted = book.granted(task, "ns/wf")
    assert granted is not None
    assert (granted.workflow, granted.attempt_deadline_ms, granted.last_progress) == (
        "ns/wf",
        T0 + 600_000,
        {"done": 7},
    )
    assert book.queued(task.token) is None and book.lease(task.token) is not None
    assert book.counts() == (0, 1)


def test_a_heartbeat_extends_the_holders_lease_up_to_the_attempt_deadline_and_keeps_its_progress() -> None:
    book = TaskBook()
    book.apply("e", "wf", schedule(), T0)
    book.apply("e", "wf", act.LeaseTask("e/a/1/0/1", "w1", T0 + 30_000, T0 + 40_000), T0)
    first = book.heartbeat("e/a/1/0/1", "w1", {"page": 3}, T0 + 5_000)
    assert (first.lease_lost, first.lease_expires_at_ms) == (False, T0 + 35_000)
    capped = book.heartbeat("e/a/1/0/1", "w1", None, T0 + 20_000)
    assert capped.lease_expires_at_ms == T0 + 40_000, "never past the attempt's deadline"
    lease_now = book.lease("e/a/1/0/1")
    assert lease_now is not None and lease_now.progress == {"page": 3}, "a heartbeat without progress keeps it"
    assert book.heartbeat("e/a/1/0/1", "intruder", {"page": 99}, T0 + 21_000).lease_lost
    assert book.heartbeat("e/zzz/1/0/1", "w1", None, T0).lease_lost


def test_leases_expire_by_heartbeat_lease_and_attempt_deadline_with_their_last_progress() -> None:
    book = TaskBook()
    book.apply("e", "wf", schedule("e/a/1/0/1", heartbeat_required=True, lease_ms=1_000), T0)
    book.apply("e", "wf", schedule("e/b/1/0/2", step="b"), T0)
    book.apply("e", "wf", schedule("e/c/1/0/3", step="c"), T0)
    book.apply("e", "wf", act.LeaseTask("e/a/1/0/1", "w1", T0 + 1_000, T0 + 60_000), T0)
    book.apply("e", "wf", act.LeaseTask("e/b/1/0/2", "w1", T0 + 1_000, T0 + 60_000), T0)
    book.apply("e", "wf", act.LeaseTask("e/c/1/0/3", "w1", T0 + 9_000, T0 + 2_000), T0)
    book.heartbeat("e/a/1/0/1", "w1", {"rows": 10}, T0)
    assert book.expired(T0 + 999) == []
    expired = {e.token: (e.kind, e.progress) for e in book.expired(T0 + 2_000)}
    assert expired == {
        "e/a/1/0/1": ("heartbeat", {"rows": 10}),
        "e/b/1/0/2": ("lease", None),
        "e/c/1/0/3": ("start_to_close", None),
    }
    book.forget_lease("e/b/1/0/2")
    assert "e/b/1/0/2" not in {e.token for e in book.expired(T0 + 2_000)}


def test_cancel_drops_a_queued_task_and_flags_a_leased_one_and_delete_removes_either() -> None:
    book = TaskBook()
    book.apply("e", "wf", schedule("e/a/1/0/1"), T0)
    book.apply("e", "wf", schedule("e/b/1/0/2", step="b"), T0)
    book.apply("e", "wf", act.LeaseTask("e/b/1/0/2", "w1", T0 + 1_000, T0 + 9_000), T0)
    book.apply("e", "wf", act.CancelTask("e/a/1/0/1"), T0)
    book.apply("e", "wf", act.CancelTask("e/b/1/0/2"), T0)
    assert take(book, "w1") is None
    assert book.heartbeat("e/b/1/0/2", "w1", None, T0).cancel_requested
    book.apply("e", "wf", act.DeleteTask("e/b/1/0/2"), T0)
    assert book.lease("e/b/1/0/2") is None and book.counts() == (0, 0)


def test_a_task_whose_lease_failed_in_the_store_is_offered_again_only_after_the_delay() -> None:
    book = TaskBook()
    book.apply("e", "wf", schedule(), T0)
    assert take(book, "w1") is not None
    book.offer_later("e/a/1/0/1", 1_000, T0)
    waiter = waiting(book, "w1")
    assert book.promote(T0 + 999) == []
    assert [o.waiter for o in book.promote(T0 + 1_000)] == [waiter]


def test_a_task_given_back_by_a_poll_that_stopped_goes_to_the_next_waiting_poller() -> None:
    book = TaskBook()
    first = waiting(book, "w1")
    (offer,) = book.apply("e", "wf", schedule(), T0)
    assert offer.waiter is first
    second = waiting(book, "w2")
    assert [o.waiter for o in book.give_back(offer.item, T0)] == [second]


# -- eager dispatch ---------------------------------------------------------------------------


def test_eager_dispatch_reserves_the_waiting_poller_and_hands_it_the_lease_once_it_commits() -> None:
    book = TaskBook()
    waiter = waiting(book, "w1")
    action = schedule()
    assert book.reserve("wf", [action], T0) == [("e/a/1/0/1", "w1")]
    assert book.apply("e", "wf", action, T0) == [], "the reserved task is not offered again"
    assert take(book, "w2") is None
    offers = book.apply("e", "wf", lease(progress="half"), T0)
    assert len(offers) == 1 and offers[0].waiter is waiter
    granted = offers[0].item
    assert isinstance(granted, GrantedTask) and granted.last_progress == "half"


def test_eager_dispatch_reserves_only_the_sticky_worker_for_a_sticky_task() -> None:
    book = TaskBook()
    waiting(book, "w2")
    assert book.reserve("wf", [schedule(sticky="w1")], T0) == []
    waiting(book, "w1")
    assert book.reserve("wf", [schedule(sticky="w1")], T0) == [("e/a/1/0/1", "w1")]


def test_eager_dispatch_skips_tasks_in_backoff_and_pollers_of_other_steps() -> None:
    book = TaskBook()
    waiting(book, "w1", steps=("b",))
    assert book.reserve("wf", [schedule()], T0) == []
    waiting(book, "w2")
    assert book.reserve("wf", [schedule(visible_at=T0 + 1)], T0) == []


def test_a_completion_standing_by_is_reserved_before_the_same_worker_s_waiting_polls() -> None:
    book = TaskBook()
    waiting(book, "w1")
    in_reply = book.wait("w1", "q", frozenset({"a"}), EVERY, in_reply=True)
    action = schedule(sticky="w1")
    assert book.reserve("wf", [action], T0) == [("e/a/1/0/1", "w1")]
    book.apply("e", "wf", action, T0)
    offers = book.apply("e", "wf", lease(), T0)
    assert [o.waiter for o in offers] == [in_reply], "the next task goes back in the completion's reply"


def test_a_completion_standing_by_is_never_offered_a_queued_task_that_would_need_a_lease_of_its_own() -> None:
    book = TaskBook()
    in_reply = book.wait("w1", "q", frozenset({"a"}), EVERY, in_reply=True)
    assert book.apply("e", "wf", schedule(), T0) == []
    poller = waiting(book, "w2")
    book.stop_waiting(in_reply)
    taken = take(book, "w2")
    assert taken is not None and taken.token == "e/a/1/0/1", "still queued for the polls"
    assert poller.listening


def test_a_released_reservation_puts_the_poller_back_and_offers_it_the_task() -> None:
    book = TaskBook()
    waiter = waiting(book, "w1")
    action = schedule()
    book.reserve("wf", [action], T0)
    book.apply("e", "wf", action, T0)  # as if it committed, but its lease was refused
    offers = book.release(["e/a/1/0/1"], T0)
    assert [(o.waiter, o.item.token) for o in offers] == [(waiter, "e/a/1/0/1")]


def test_a_reservation_released_before_the_task_exists_just_returns_the_poller() -> None:
    book = TaskBook()
    waiter = waiting(book, "w1")
    book.reserve("wf", [schedule()], T0)
    assert book.release(["e/a/1/0/1"], T0) == []  # the commit failed: no task, the poller waits again
    assert [o.waiter for o in book.apply("e", "wf", schedule("e/b/1/0/1"), T0)] == [waiter]


# -- undelivered ------------------------------------------------------------------------------


def test_a_lease_that_commits_after_its_poller_stopped_waits_for_that_workers_next_poll() -> None:
    book = TaskBook()
    waiter = waiting(book, "w1")
    action = schedule()
    book.reserve("wf", [action], T0)
    book.apply("e", "wf", action, T0)
    book.stop_waiting(waiter)  # the poll timed out while the commit was in flight
    assert book.apply("e", "wf", lease(), T0) == []
    assert take(book, "w2") is None, "another worker never gets it"
    granted = take(book, "w1")
    assert isinstance(granted, GrantedTask) and granted.token == "e/a/1/0/1"
    assert take(book, "w1") is None, "handed out once"


def test_a_lease_whose_stand_by_stopped_goes_at_once_to_a_poll_of_the_same_worker_waiting_now() -> None:
    # Under load: another execution's decision reserves a completion standing by, whose reply leaves
    # before that decision commits. The worker's polls were waiting all along: one of them takes it,
    # instead of the lease waiting for a poll that starts later (or never) and expiring.
    book = TaskBook()
    waiting(book, "w2")
    poller = waiting(book, "w1")
    in_reply = book.wait("w1", "q", frozenset({"a"}), EVERY, in_reply=True)
    action = schedule()
    assert book.reserve("wf", [action], T0) == [("e/a/1/0/1", "w1")]
    book.apply("e", "wf", action, T0)
    book.stop_waiting(in_reply)  # the completion's reply went without it
    offers = book.apply("e", "wf", lease(), T0)
    assert [(o.waiter, o.item.token) for o in offers] == [(poller, "e/a/1/0/1")]
    assert not poller.listening
    assert take(book, "w1") is None, "handed out once"


def test_a_completion_standing_by_takes_a_lease_kept_for_its_worker() -> None:
    book = TaskBook()
    waiter = waiting(book, "w1")
    action = schedule()
    book.reserve("wf", [action], T0)
    book.apply("e", "wf", action, T0)
    book.stop_waiting(waiter)
    assert book.apply("e", "wf", lease(), T0) == []  # nobody of w1 waits: kept
    assert book.take_undelivered("w2", frozenset({"a"})) is None
    granted = book.take_undelivered("w1", frozenset({"a"}))
    assert isinstance(granted, GrantedTask) and granted.token == "e/a/1/0/1"
    assert book.take_undelivered("w1", frozenset({"a"})) is None


def test_an_undelivered_lease_that_expired_meanwhile_is_not_handed_out() -> None:
    book = TaskBook()
    waiter = waiting(book, "w1")
    action = schedule()
    book.reserve("wf", [action], T0)
    book.apply("e", "wf", action, T0)
    book.stop_waiting(waiter)
    book.apply("e", "wf", lease(), T0)
    book.apply("e", "wf", act.DeleteTask("e/a/1/0/1"), T0 + 30_000)  # timed out and retried elsewhere
    assert take(book, "w1") is None


def test_a_lease_given_back_by_a_cancelled_poll_stays_for_its_worker() -> None:
    book = TaskBook()
    waiting(book, "w1")
    action = schedule()
    book.reserve("wf", [action], T0)
    book.apply("e", "wf", action, T0)
    (offer,) = book.apply("e", "wf", lease(), T0)
    assert book.give_back(offer.item, T0) == []
    assert isinstance(take(book, "w1"), GrantedTask)


# -- restart ------------------------------------------------------------------------------------


def _row(token: str, state: str, **changes: Any) -> TaskRow:
    fields: dict[str, Any] = {
        "token": token,
        "execution_id": "e",
        "step": "a",
        "attempt": 1,
        "poll": 0,
        "task_queue": "q",
        "arguments": {},
        "visible_at_ms": T0,
        "timeout_ms": 600_000,
        "lease_ms": 30_000,
        "heartbeat_required": False,
        "sticky_worker_id": None,
        "state": state,
        "worker_id": None,
        "lease_expires_at_ms": None,
        "attempt_deadline_ms": None,
        "cancel_requested": False,
        "progress": None,
        "workflow": "ns/wf",
    }
    return TaskRow(**(fields | changes))


def test_a_restart_rebuilds_queued_tasks_and_gives_held_leases_a_fresh_period_with_their_progress() -> None:
    book = TaskBook()
    book.load(
        [
            _row("e/a/1/0/1", "queued"),
            _row("e/b/1/0/2", "leased", worker_id="w1", lease_expires_at_ms=T0 - 5_000, progress={"n": 1}),
        ],
        T0 + 60_000,
    )
    assert book.counts() == (1, 1)
    held = book.lease("e/b/1/0/2")
    assert held is not None and held.lease_expires_at_ms == T0 + 90_000 and held.progress == {"n": 1}
    assert held.namespace == "ns"
    assert book.expired(T0 + 60_000) == []


# -- "no worker polls this queue" ---------------------------------------------------------------


def test_a_task_waiting_long_on_a_queue_nobody_polls_says_so() -> None:
    book = TaskBook()
    book.apply("e", "wf", schedule(), T0)
    assert book.waiting_hint("e/a/1/0/1", T0 + 4_999) is None, "not before a few seconds"
    assert book.waiting_hint("e/a/1/0/1", T0 + 5_000) == "no worker has polled queue q for step a in the last 60 s"


def test_a_task_waiting_on_a_polled_queue_whose_pollers_serve_other_steps_says_so() -> None:
    book = TaskBook()
    book.apply("e", "wf", schedule(), T0)
    book.polled("q", ["b"], T0 + 1_000)
    assert book.waiting_hint("e/a/1/0/1", T0 + 6_000) == (
        "workers poll queue q but none serves step a (in the last 60 s)"
    )
    waiting(book, "w1", steps=("b",))
    assert book.waiting_hint("e/a/1/0/1", T0 + 100_000) == (
        "workers poll queue q but none serves step a (in the last 60 s)"
    ), "a poller waiting now counts as polling now"


def test_no_hint_while_a_worker_serving_the_step_polls_and_again_after_it_went_silent() -> None:
    book = TaskBook()
    book.apply("e", "wf", schedule(), T0)
    book.polled("q", ["a"], T0 + 1_000)
    assert book.waiting_hint("e/a/1/0/1", T0 + 30_000) is None
    assert book.waiting_hint("e/a/1/0/1", T0 + 61_001) == "no worker has polled queue q for step a in the last 60 s"


def test_no_hint_for_a_task_in_backoff_or_leased() -> None:
    book = TaskBook()
    book.apply("e", "wf", schedule(visible_at=T0 + 60_000), T0)
    assert book.waiting_hint("e/a/1/0/1", T0 + 30_000) is None
    book.apply("e", "wf", schedule("e/b/1/0/2", step="b"), T0)
    book.apply("e", "wf", act.LeaseTask("e/b/1/0/2", "w1", T0 + 1_000, T0 + 9_000), T0)
    assert book.waiting_hint("e/b/1/0/2", T0 + 30_000) is None


def test_a_workers_repeated_polls_stamp_its_steps_once_a_grain() -> None:
    """A poll of hundreds of steps, many times a second, walks them at most once per grain: the steps'
    last-poll times may lag by less than the grain, nothing more."""
    steps = [f"s{n}" for n in range(200)] + ["a"]
    book = TaskBook()
    book.apply("e", "wf", schedule(), T0)
    book.polled("q", steps, T0)
    book.polled("q", reversed(steps), T0 + POLL_RECORD_GRAIN_MS - 1)  # the same set: not stamped again
    hint = "workers poll queue q but none serves step a (in the last 60 s)"
    book.polled("q", ["b"], T0 + 60_000)  # the queue is still polled, for another step
    assert book.waiting_hint("e/a/1/0/1", T0 + 60_001) == hint, "a's time is the first poll's"
    book.polled("q", steps, T0 + 60_002)  # a grain later: stamped
    assert book.waiting_hint("e/a/1/0/1", T0 + 60_003) is None


def test_the_poll_records_are_bounded_forgetting_the_least_recently_polled() -> None:
    book = TaskBook()
    for n in range(MAX_POLL_RECORDS + 10):
        book.polled(f"q{n}", ["a"], T0 + n)
    book.polled("q0", ["a"], T0 + 1)  # q0 polled again: now among the most recent
    book.apply("e", "wf", schedule("e/a/1/0/1", queue="q1"), T0)
    book.apply("e", "wf", schedule("e/a/1/0/2", queue="q0"), T0)
    assert book.waiting_hint("e/a/1/0/1", T0 + 6_000) is not None, "q1 was forgotten"
    assert book.waiting_hint("e/a/1/0/2", T0 + 6_000) is None


# -- backlogs (the timers' backpressure reads them) --------------------------------------------


def test_a_queues_backlog_counts_its_queued_tasks_until_leased_or_dropped_and_when_one_was_last_leased() -> None:
    book = TaskBook()
    book.apply("e1", "wf", schedule("e1/a/1/0/1"), T0)
    book.apply("e2", "wf", schedule("e2/a/1/0/1", visible_at=T0 + 5_000), T0)  # in backoff: held all the same
    book.apply("e3", "wf", schedule("e3/a/1/0/1", queue="other"), T0)
    assert book.backlog("q") == (2, None)
    assert book.backlog("other") == (1, None)
    assert book.backlog("unknown") == (0, None)

    taken = take(book, "w1")
    assert taken is not None
    assert book.backlog("q").queued == 2, "taken but not leased yet: still held"
    book.apply("e1", "wf", lease("e1/a/1/0/1"), T0 + 7)
    assert book.backlog("q") == (1, T0 + 7)
    book.apply("e2", "wf", act.CancelTask("e2/a/1/0/1"), T0 + 8)
    assert book.backlog("q") == (0, T0 + 7)
    book.apply("e1", "wf", schedule("e1/b/1/0/2"), T0 + 9)
    book.apply("e1", "wf", schedule("e1/b/1/0/2"), T0 + 9)  # the same token again: counted once
    assert book.backlog("q").queued == 1
