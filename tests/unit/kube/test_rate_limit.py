"""The operator's token bucket, on a fake clock: tokens come back only as the clock moves."""

from __future__ import annotations

import asyncio

import pytest

from cerebelum_operator.kube.rate_limit import TokenBucket
from cerebelum_operator.runtime import FakeClock
from tests.support.waiting import advance_until, eventually


async def test_the_token_bucket_lets_a_burst_through_at_once_then_makes_callers_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=10, clock=clock)
    for _ in range(10):
        await bucket.take()  # the clock never moved: the burst needs no waiting
    eleventh = asyncio.create_task(bucket.take())
    await clock.wait_for_sleepers(1)
    await clock.advance(0.45)
    assert not eleventh.done(), "a token came back before 1/rate seconds"
    await clock.advance(0.05)
    await eventually(eleventh.done, what="the eleventh token")


async def test_the_token_bucket_allows_rate_acquisitions_per_second_after_the_burst() -> None:
    clock = FakeClock()
    rate, burst = 50.0, 5
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    taken = 0

    async def taker() -> None:
        nonlocal taken
        while True:
            await bucket.take()
            taken += 1

    task = asyncio.create_task(taker())
    try:
        await eventually(lambda: taken == burst, what="the burst")
        begun = clock.now_s()
        await advance_until(clock, lambda: clock.now_s() - begun >= 1.0, step=0.01, what="one second")
        await clock.wait_for_sleepers(1)
        assert burst + rate - 1 <= taken <= burst + rate
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_token_bucket_shares_its_rate_among_concurrent_callers_in_turn() -> None:
    clock = FakeClock()
    rate, burst = 40.0, 4
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    counts = [0, 0, 0, 0]

    async def taker(index: int) -> None:
        while True:
            await bucket.take()
            counts[index] += 1

    tasks = [asyncio.create_task(taker(i)) for i in range(len(counts))]
    try:
        await eventually(lambda: sum(counts) == burst, what="the burst")
        begun = clock.now_s()
        await advance_until(clock, lambda: clock.now_s() - begun >= 1.0, step=0.01, what="one second")
        await clock.wait_for_sleepers(1)
        assert burst + rate - 1 <= sum(counts) <= burst + rate
        assert min(counts) >= rate / len(counts) - 2, f"callers were not served in turn: {counts}"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_try_take_refuses_without_waiting_and_refills_as_the_clock_moves() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=2, clock=clock)
    assert [bucket.try_take() for _ in range(3)] == [True, True, False]
    await clock.advance(0.5)
    assert not bucket.try_take()
    await clock.advance(0.5)
    assert bucket.try_take()
    await clock.advance(60)
    assert [bucket.try_take() for _ in range(3)] == [True, True, False], "the bucket holds at most its burst"


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 5), (1.0, 0)])
def test_a_bucket_that_could_never_give_a_token_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="a rate > 0 and a burst >= 1"):
        TokenBucket(rate=rate, burst=burst, clock=FakeClock())
