"""Flow control in the dispatcher's book (invariant 8), pure, on plain integer times."""

from __future__ import annotations

import dataclasses

from cerebelum_operator.engine import actions as act
from cerebelum_operator.engine.rates import RateLimit
from cerebelum_operator.runtime.queue_gate import QueueControl
from cerebelum_operator.runtime.task_lifecycle import QueuedTask, TaskBook

from .test_task_lifecycle import EVERY, T0, lease, schedule, waiting


def keyed(token: str, key: str | None, *, priority: int = 0, limit: RateLimit | None = None) -> act.ScheduleTask:
    return dataclasses.replace(schedule(token), priority=priority, flow_key=key, key_rate_limit=limit)


def take(book: TaskBook, *, at: int = T0) -> str | None:
    taken = book.take("w1", "q", frozenset({"a"}), EVERY, now_ms=at)
    assert taken is None or isinstance(taken, QueuedTask)
    return None if taken is None else taken.token


def test_a_poll_takes_the_highest_priority_then_keys_in_turn() -> None:
    book = TaskBook()
    for i in range(4):
        book.apply("e", "wf", keyed(f"big{i}", "big"), T0)
    book.apply("e", "wf", keyed("small", "small"), T0)
    book.apply("e", "wf", keyed("urgent", "big", priority=9), T0)
    assert [take(book) for _ in range(3)] == ["urgent", "big0", "small"]


def test_a_paused_queue_offers_nothing_and_resuming_serves_the_waiting_polls() -> None:
    book = TaskBook()
    assert book.set_control("q", QueueControl(paused=True), T0) == []
    waiter = waiting(book, "w1")
    assert book.apply("e", "wf", schedule("t1"), T0) == []
    assert take(book) is None
    assert book.waiting_hint("t1", T0) == "task queue 'q' is paused"
    offers = book.set_control("q", QueueControl(), T0 + 5)
    assert [(o.waiter, o.item.token) for o in offers] == [(waiter, "t1")]


def test_a_paused_queue_is_never_leased_eagerly_nor_is_a_rate_limited_task() -> None:
    book = TaskBook()
    waiting(book, "w1")
    book.set_control("q", QueueControl(paused=True), T0)
    assert book.reserve("wf", [schedule("t1")], T0) == []
    book.set_control("q", QueueControl(), T0)
    assert book.reserve("wf", [keyed("t2", "k", limit=RateLimit(5, 1000))], T0) == []
    assert book.reserve("wf", [schedule("t3")], T0) == [("t3", "w1")]


def test_a_queue_rate_limit_holds_tasks_back_until_its_window_has_room_and_says_so() -> None:
    book = TaskBook()
    book.set_control("q", QueueControl(rate_limit=RateLimit(1, 1000)), T0)
    book.apply("e", "wf", schedule("t1"), T0)
    book.apply("e", "wf", schedule("t2"), T0)
    assert take(book) == "t1"
    assert take(book) is None, "t1 is in flight: it holds the only place"
    book.apply("e", "wf", lease("t1", at=T0 + 10), T0 + 10)
    assert book.waiting_hint("t2", T0 + 10) == "rate limited: queue 'q' 1/1s"
    waiter = waiting(book, "w2")
    assert book.next_due_ms() == T0 + 1010
    assert book.promote(T0 + 1009) == []
    offers = book.promote(T0 + 1010)
    assert [(o.waiter, o.item.token) for o in offers] == [(waiter, "t2")]


def test_a_task_given_back_or_refused_frees_its_place_at_once() -> None:
    book = TaskBook()
    book.set_control("q", QueueControl(rate_limit=RateLimit(1, 1000)), T0)
    book.apply("e", "wf", schedule("t1"), T0)
    book.apply("e", "wf", schedule("t2"), T0)
    first = book.take("w1", "q", frozenset({"a"}), EVERY, now_ms=T0)
    assert isinstance(first, QueuedTask)
    book.give_back(first, T0)  # its poll went away before the lease was asked for
    assert take(book) == "t2"
    book.drop("t2")  # the engine refused the lease
    assert take(book) == "t1"


def test_a_key_over_its_rate_is_parked_while_other_keys_go_on_then_comes_back() -> None:
    book = TaskBook()
    limit = RateLimit(1, 60_000)
    for token, key in (("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b")):
        book.apply("e", "wf", keyed(token, key, limit=limit), T0)
    assert take(book) == "a1"
    book.apply("e", "wf", lease("a1"), T0)
    assert take(book) == "b1"
    book.apply("e", "wf", lease("b1"), T0)
    assert take(book) is None
    assert book.waiting_hint("a2", T0) == "rate limited: key 'a' 1/1m"
    waiter = waiting(book, "w1")
    offers = book.promote(T0 + 60_000)
    assert [(o.waiter, o.item.token) for o in offers] == [(waiter, "a2")]
    assert take(book, at=T0 + 60_000) == "b2"


def test_a_lease_that_may_have_landed_counts_as_a_start() -> None:
    book = TaskBook()
    book.set_control("q", QueueControl(rate_limit=RateLimit(1, 1000)), T0)
    book.apply("e", "wf", schedule("t1"), T0)
    assert take(book) == "t1"
    book.offer_later("t1", 1000, T0 + 5)  # the store failed mid-commit
    assert book.promote(T0 + 1004) == []
    assert take(book, at=T0 + 1004) is None
    book.promote(T0 + 1005)
    assert take(book, at=T0 + 1005) == "t1"


def test_queue_stats_count_what_waits_and_why() -> None:
    book = TaskBook()
    book.set_control("q", QueueControl(paused=True, note="deploy"), T0)
    book.apply("e", "wf", schedule("t1"), T0)
    book.apply("e", "wf", schedule("t2", visible_at=T0 + 500), T0)
    waiting(book, "w1")
    stats = book.queue_stats(T0)["q"]
    assert (stats.ready, stats.scheduled, stats.running, stats.pollers) == (1, 1, 0, 1)
    assert stats.block is not None and stats.block.reason == "task queue 'q' is paused (deploy)"


def test_a_rate_limited_task_is_leased_eagerly_only_when_admitted_at_its_decisions_time() -> None:
    book = TaskBook()
    book.set_control("q", QueueControl(rate_limit=RateLimit(1, 1000)), T0)
    waiting(book, "w1")
    waiting(book, "w2")
    assert book.reserve("wf", [schedule("t1")], T0 + 5, decision_now_ms=T0) == [("t1", "w1")]
    assert book.reserve("wf", [schedule("t2")], T0 + 5, decision_now_ms=T0) == [], "t1 holds the only place"
    book.apply("e", "wf", schedule("t1"), T0 + 5)
    book.apply("e", "wf", lease("t1", "w1", at=T0), T0 + 5)
    assert book.reserve("wf", [schedule("t3")], T0 + 1004, decision_now_ms=T0 + 1004) == []
    assert book.reserve("wf", [schedule("t3")], T0 + 1005, decision_now_ms=T0 + 1005) == [("t3", "w2")]


def test_an_eager_commit_that_failed_keeps_its_place_taken_as_a_start() -> None:
    book = TaskBook()
    book.set_control("q", QueueControl(rate_limit=RateLimit(1, 1000)), T0)
    waiting(book, "w1")
    assert book.reserve("wf", [schedule("t1")], T0, decision_now_ms=T0) == [("t1", "w1")]
    book.release(["t1"], T0 + 2)  # the commit failed: it may have landed
    book.apply("e", "wf", schedule("t2"), T0 + 3)
    assert take(book, at=T0 + 3) is None
    assert take(book, at=T0 + 1002) == "t2"
