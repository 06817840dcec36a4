"""When a finished Execution object is due for deletion (issue 19): the pure rules, on a fake clock."""

from __future__ import annotations

import pytest

from cerebelum_operator.kube.expiry import ExpiryQueue, TtlPolicy, due_at_ms, finished_at_ms, parse_ttl
from cerebelum_operator.kube.projection import rfc3339
from cerebelum_operator.runtime import FakeClock

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def finished(phase: str, at_ms: int) -> dict[str, object]:
    return {"phase": phase, "finishedAt": rfc3339(at_ms)}


def test_a_finished_object_is_due_its_time_to_live_after_the_finish_time_its_status_shows() -> None:
    clock = FakeClock()
    status = finished("Succeeded", clock.now_ms())
    assert due_at_ms(status, ttl_ms=HOUR_MS) == clock.now_ms() + HOUR_MS


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled"])
def test_every_terminal_phase_an_object_shows_expires(phase: str) -> None:
    assert due_at_ms(finished(phase, 1_000), ttl_ms=5) == 1_005


@pytest.mark.parametrize("phase", ["Pending", "Running", "Sleeping", "WaitingForApproval", "WaitingForSignal", None])
def test_an_object_whose_work_goes_on_never_expires(phase: str | None) -> None:
    assert due_at_ms({"phase": phase, "finishedAt": rfc3339(1_000)}, ttl_ms=0) is None


def test_a_continued_as_new_object_does_not_expire_because_its_chain_goes_on() -> None:
    assert due_at_ms(finished("ContinuedAsNew", 1_000), ttl_ms=0) is None


def test_an_object_kept_for_ever_is_never_due() -> None:
    assert due_at_ms(finished("Succeeded", 1_000), ttl_ms=None) is None


def test_an_execution_refused_before_it_ran_is_due_from_when_its_conditions_were_set() -> None:
    status = {
        "phase": "Failed",
        "conditions": [
            {"type": "Accepted", "status": "False", "lastTransitionTime": rfc3339(5_000)},
            {"type": "Other", "status": "True", "lastTransitionTime": rfc3339(2_000)},
        ],
    }
    assert finished_at_ms(status) == 5_000
    assert due_at_ms(status, ttl_ms=1_000) == 6_000


def test_a_status_with_no_time_at_all_is_never_due() -> None:
    assert due_at_ms({"phase": "Failed", "finishedAt": "not a time"}, ttl_ms=0) is None


async def test_the_due_time_is_the_same_after_a_restart_because_it_comes_from_the_status() -> None:
    clock = FakeClock()
    status = finished("Failed", clock.now_ms())
    first = due_at_ms(status, ttl_ms=DAY_MS)
    await clock.advance(HOUR_MS / 1000)  # the operator restarts an hour later and lists the object again
    assert due_at_ms(dict(status), ttl_ms=DAY_MS) == first


def test_a_workflow_without_a_time_to_live_takes_the_default_and_never_keeps_for_ever() -> None:
    policy = TtlPolicy(default_ms=DAY_MS)
    assert policy.ttl_ms(None) == DAY_MS
    assert policy.ttl_ms("2s") == 2_000
    assert policy.ttl_ms("never") is None
    assert policy.ttl_ms("0s") == 0
    assert TtlPolicy().ttl_ms(None) is None


def test_the_store_retention_caps_every_time_to_live_so_no_object_outlives_its_history() -> None:
    policy = TtlPolicy(default_ms=HOUR_MS, retention_ms=DAY_MS)
    assert policy.ttl_ms("never") == DAY_MS
    assert policy.ttl_ms("30d") == DAY_MS
    assert policy.ttl_ms("1m") == 60_000


@pytest.mark.parametrize("default_ms", [None, 2 * DAY_MS])
def test_a_default_time_to_live_longer_than_the_store_retention_is_refused_naming_both(default_ms: int | None) -> None:
    with pytest.raises(
        ValueError, match=r"time-to-live \((never|2d)\) is longer than the store's retention period \(1d\)"
    ):
        TtlPolicy(default_ms=default_ms, retention_ms=DAY_MS)


def test_a_malformed_time_to_live_counts_as_unset() -> None:
    assert TtlPolicy(default_ms=HOUR_MS).ttl_ms("soon") == HOUR_MS
    with pytest.raises(ValueError):
        parse_ttl("soon")


async def test_the_queue_hands_out_what_is_due_earliest_first_and_keeps_the_rest() -> None:
    clock = FakeClock()
    now = clock.now_ms()
    queue: ExpiryQueue[str] = ExpiryQueue()
    queue.put("late", now + 3_000)
    queue.put("early", now + 1_000)
    queue.put("middle", now + 2_000)
    assert queue.pop_due(clock.now_ms(), limit=10) == []
    assert queue.next_due_ms() == now + 1_000
    await clock.advance(2.5)
    assert queue.pop_due(clock.now_ms(), limit=10) == ["early", "middle"]
    assert len(queue) == 1 and "late" in queue
    assert queue.next_due_ms() == now + 3_000


def test_putting_a_key_again_moves_it_and_a_discarded_key_never_comes_due() -> None:
    queue: ExpiryQueue[str] = ExpiryQueue()
    queue.put("a", 10)
    queue.put("a", 50)
    queue.put("b", 20)
    queue.discard("b")
    assert queue.next_due_ms() == 50
    assert queue.pop_due(40, limit=10) == []
    assert queue.pop_due(50, limit=10) == ["a"]
    assert len(queue) == 0 and queue.next_due_ms() is None


def test_the_queue_hands_out_at_most_the_limit_at_a_time() -> None:
    queue: ExpiryQueue[int] = ExpiryQueue()
    for key in range(5):
        queue.put(key, 0)
    assert queue.pop_due(0, limit=2) == [0, 1]
    assert queue.pop_due(0, limit=10) == [2, 3, 4]
