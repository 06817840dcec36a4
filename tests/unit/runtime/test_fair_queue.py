"""The order ready tasks start in (`FairQueue`): priority first, then turns between flow keys."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass

from cerebelum_operator.runtime.fair_queue import FairQueue


@dataclass(frozen=True)
class Task:
    token: str
    priority: int = 0
    flow_key: str | None = None


def _drain(queue: FairQueue[Task]) -> list[str]:
    taken: list[str] = []
    while (task := queue.take()) is not None:
        taken.append(task.token)
    return taken


def test_tasks_without_priorities_or_keys_start_first_in_first_out() -> None:
    queue: FairQueue[Task] = FairQueue()
    for i in range(5):
        queue.add(Task(f"t{i}"), order=i)
    assert _drain(queue) == ["t0", "t1", "t2", "t3", "t4"]


def test_a_higher_priority_starts_first_whatever_its_arrival() -> None:
    queue: FairQueue[Task] = FairQueue()
    queue.add(Task("low", priority=0), order=0)
    queue.add(Task("high", priority=5, flow_key="k"), order=1)
    queue.add(Task("mid", priority=1, flow_key="k"), order=2)
    assert _drain(queue) == ["high", "mid", "low"]


def test_a_key_with_one_task_is_not_starved_by_a_key_with_a_thousand() -> None:
    queue: FairQueue[Task] = FairQueue()
    for i in range(1000):
        queue.add(Task(f"big-{i}", flow_key="big"), order=i)
    assert [queue.take() for _ in range(10)][-1] is not None  # the big key has been served a while
    queue.add(Task("small-0", flow_key="small"), order=1000)
    assert "small-0" in {t.token for t in (queue.take(), queue.take()) if t is not None}


def test_keys_take_turns_in_every_prefix_and_priorities_never_invert() -> None:
    """Property, over 200 random queues: with everything queued up front, a higher priority always
    starts before a lower one, and within a priority no key gets two turns more than another key
    that still has tasks."""
    for seed in range(200):
        rng = random.Random(seed)
        queue: FairQueue[Task] = FairQueue()
        tasks = [
            Task(f"t{i}", priority=rng.choice((0, 0, 1, 5)), flow_key=rng.choice(("a", "b", "c", None, "d")))
            for i in range(rng.randrange(1, 60))
        ]
        for order, task in enumerate(tasks):
            queue.add(task, order=order)
        by_token = {t.token: t for t in tasks}
        taken = [by_token[token] for token in _drain(queue)]
        assert sorted(taken, key=lambda t: t.token) == sorted(tasks, key=lambda t: t.token), seed
        assert [t.priority for t in taken] == sorted((t.priority for t in taken), reverse=True), seed
        for priority in {t.priority for t in tasks}:
            level = [t for t in taken if t.priority == priority]
            remaining = Counter(t.flow_key for t in level)
            served: Counter[str | None] = Counter()
            for task in level:
                served[task.flow_key] += 1
                remaining[task.flow_key] -= 1
                for other, left in remaining.items():
                    if left > 0:
                        assert served[task.flow_key] <= served[other] + 1, (seed, priority, task)
        orders = {t.token: i for i, t in enumerate(tasks)}
        for key in {t.flow_key for t in tasks}:
            for priority in {t.priority for t in tasks}:
                mine = [orders[t.token] for t in taken if t.flow_key == key and t.priority == priority]
                assert mine == sorted(mine), seed  # within a key and priority, first in first out


def test_a_refused_key_is_parked_until_unparked_and_the_others_go_on() -> None:
    queue: FairQueue[Task] = FairQueue()
    for i in range(3):
        queue.add(Task(f"a{i}", flow_key="a"), order=2 * i)
        queue.add(Task(f"b{i}", flow_key="b"), order=2 * i + 1)
    calls: Counter[str | None] = Counter()

    def only_b(task: Task) -> bool:
        calls[task.flow_key] += 1
        return task.flow_key == "b"

    assert [queue.take(only_b) for _ in range(4)] == [Task("b0", 0, "b"), Task("b1", 0, "b"), Task("b2", 0, "b"), None]
    assert calls["a"] == 1  # asked once, then parked: a blocked key costs nothing per take
    assert queue.parked() == ["a"]
    queue.unpark("a")
    assert _drain(queue) == ["a0", "a1", "a2"]


def test_a_removed_task_never_starts_and_its_key_keeps_its_place() -> None:
    queue: FairQueue[Task] = FairQueue()
    queue.add(Task("a0", flow_key="a"), order=0)
    queue.add(Task("a1", flow_key="a"), order=1)
    queue.add(Task("b0", flow_key="b"), order=2)
    assert queue.remove("a0") == Task("a0", 0, "a")
    assert queue.remove("a0") is None
    assert _drain(queue) == ["a1", "b0"]
    assert len(queue) == 0


def test_taking_costs_about_log_n_with_a_hundred_thousand_tasks_queued() -> None:
    """Measured, not asserted on time: the figure goes to docs/operations.md. The assertion is on
    the work done, which the heap bounds: a take pops only stale entries it pushed itself."""
    queue: FairQueue[Task] = FairQueue()
    n = 100_000
    started = time.perf_counter()
    for i in range(n):
        queue.add(Task(f"t{i}", priority=i % 3, flow_key=f"k{i % 1000}"), order=i)
    added = time.perf_counter()
    assert len(_drain(queue)) == n
    done = time.perf_counter()
    print(f"add {1e6 * (added - started) / n:.1f} us/task, take {1e6 * (done - added) / n:.1f} us/task")
