"""Pauses and rate limits as a pure core (`FlowGate`), on plain integer times."""

from __future__ import annotations

import random

from cerebelum_operator.engine.rates import RateLimit
from cerebelum_operator.runtime.queue_gate import Block, FlowGate, QueueControl, RateWindow
from cerebelum_operator.store import TaskStartRow

TEN_PER_S = RateLimit(10, 1000)


def test_a_paused_queue_blocks_every_task_until_resumed_and_says_why() -> None:
    gate = FlowGate()
    gate.set_control("emails", QueueControl(paused=True, note="provider outage"))
    assert gate.block("emails", None, None, 0) == Block("task queue 'emails' is paused (provider outage)", None)
    assert gate.block("other", None, None, 0) is None
    gate.set_control("emails", QueueControl())
    assert gate.block("emails", None, None, 0) is None
    assert gate.controls() == {}


def test_a_queue_rate_limit_admits_count_starts_per_sliding_period() -> None:
    gate = FlowGate()
    gate.set_control("emails", QueueControl(rate_limit=RateLimit(2, 1000)))
    for token, at in (("a", 100), ("b", 400)):
        assert gate.block("emails", None, None, at) is None
        gate.charge(token, "emails", None, None)
        gate.started(token, "emails", None, None, at)
    assert gate.block("emails", None, None, 500) == Block("rate limited: queue 'emails' 2/1s", 1100)
    assert gate.block("emails", None, None, 1099) is not None
    assert gate.block("emails", None, None, 1100) is None  # the start at 100 left (1100 - 1000, 1100]


def test_a_task_in_flight_holds_its_place_until_its_lease_is_known() -> None:
    gate = FlowGate()
    gate.set_control("q", QueueControl(rate_limit=RateLimit(1, 1000)))
    gate.charge("a", "q", None, None)
    assert gate.block("q", None, None, 5_000) == Block("rate limited: queue 'q' 1/1s", None)
    gate.uncharge("a")  # refused: never started
    assert gate.block("q", None, None, 5_000) is None


def test_a_key_rate_limit_holds_back_that_key_only() -> None:
    gate = FlowGate()
    limit = RateLimit(1, 60_000)
    gate.charge("a", "q", "acme", limit)
    gate.started("a", "q", "acme", limit, 1_000)
    assert gate.block("q", "acme", limit, 2_000) == Block("rate limited: key 'acme' 1/1m", 61_000)
    assert gate.block("q", "globex", limit, 2_000) is None
    assert gate.block("q", "acme", None, 2_000) is None  # a task of the key without a limit


def test_a_restarted_gate_rebuilds_its_windows_from_the_recorded_starts() -> None:
    gate = FlowGate()
    starts = [
        TaskStartRow("a", "q", None, 9_500, 10_500),
        TaskStartRow("b", "q", "acme", 9_800, 10_800),
    ]
    gate.load({"q": QueueControl(rate_limit=RateLimit(2, 1000))}, starts, 10_000)
    assert gate.block("q", None, None, 10_000) == Block("rate limited: queue 'q' 2/1s", 10_500)
    assert gate.block("x", "acme", RateLimit(1, 1000), 10_000) == Block("rate limited: key 'acme' 1/1s", 10_800)


def test_windows_forget_what_no_period_sees_any_more() -> None:
    gate = FlowGate()
    gate.set_control("q", QueueControl(rate_limit=RateLimit(5, 1000)))
    limit = RateLimit(5, 2000)
    for i in range(5):
        gate.started(f"t{i}", "q", "k", limit, i * 100)
    assert gate.longest_period_ms() == 2000
    gate.trim(10_000)
    assert gate.block("q", "k", limit, 10_000) is None
    assert gate._keys == {}


def test_admitting_at_each_offer_never_puts_more_than_count_starts_in_any_period() -> None:
    """Property, over random offers, refusals and commit delays: the sorted start times of admitted
    tasks satisfy t[i + count] - t[i] >= period (what the integration tests measure from history)."""
    for seed in range(100):
        rng = random.Random(seed)
        limit = RateLimit(rng.randint(1, 5), rng.choice((100, 1000, 250)))
        gate = FlowGate()
        gate.set_control("q", QueueControl(rate_limit=limit))
        now = 0
        starts: list[int] = []
        in_flight: list[str] = []
        for n in range(300):
            now += rng.randint(0, 60)
            while in_flight and (rng.random() < 0.5):
                token = in_flight.pop(0)
                if rng.random() < 0.1:
                    gate.uncharge(token)
                else:
                    gate.started(token, "q", None, None, now)
                    starts.append(now)
            if gate.block("q", None, None, now) is None:
                gate.charge(f"t{n}", "q", None, None)
                in_flight.append(f"t{n}")
        starts.sort()
        assert all(b - a >= limit.period_ms for a, b in zip(starts, starts[limit.count :], strict=False)), seed


def test_a_window_says_when_it_frees_a_place() -> None:
    window = RateWindow([100, 200, 300], in_flight=1)
    assert window.frees_at(350, RateLimit(4, 1000)) == 1100
    assert window.frees_at(350, RateLimit(2, 1000)) == 1300
    assert window.frees_at(350, RateLimit(1, 1000)) is None  # only the lease in flight would free it
