"""The shared wake-up loop and the clock-measured timeout, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from cerebelum_operator.runtime import FakeClock, Wakeup
from cerebelum_operator.runtime.deadline import wait_for
from tests.support.waiting import eventually


async def test_a_wait_ends_when_its_time_passes_on_the_clock_and_not_before() -> None:
    clock = FakeClock()
    wakeup = Wakeup(clock=clock)
    waiting = asyncio.create_task(wakeup.wait(1.0))
    await clock.wait_for_sleepers(1)
    await clock.advance(0.99)
    assert not waiting.done()
    await clock.advance(0.01)
    await eventually(waiting.done, what="the wait over")


async def test_a_poke_ends_a_wait_at_once_and_its_sleep_leaves_the_clock() -> None:
    clock = FakeClock()
    wakeup = Wakeup(clock=clock)
    waiting = asyncio.create_task(wakeup.wait(60.0))
    await clock.wait_for_sleepers(1)
    wakeup.poke()
    await eventually(waiting.done, what="the wait over")
    await eventually(lambda: clock.sleepers == 0, what="the sleep cancelled")


async def test_a_poke_before_the_wait_is_not_lost_and_is_used_up_by_it() -> None:
    clock = FakeClock()
    wakeup = Wakeup(clock=clock)
    wakeup.poke()  # work arrived while the loop was busy
    await asyncio.wait_for(wakeup.wait(None), 30)  # returns at once: the clock never moved
    second = asyncio.create_task(wakeup.wait(None))
    await asyncio.sleep(0)
    assert not second.done(), "one poke woke two waits"
    wakeup.poke()
    await eventually(second.done, what="the second wait over")


async def test_the_loop_sleeps_as_long_as_each_step_asks_and_runs_again_when_poked() -> None:
    clock = FakeClock()
    wakeup = Wakeup(clock=clock)
    steps: list[float] = []

    async def step() -> float:
        steps.append(clock.now_s())
        return 5.0

    loop = asyncio.create_task(wakeup.run(step))
    try:
        await clock.wait_for_sleepers(1)
        assert len(steps) == 1
        await clock.advance(5.0)
        await eventually(lambda: len(steps) == 2, what="the second step, 5 s later")
        assert steps[1] - steps[0] == pytest.approx(5.0)
        await clock.wait_for_sleepers(1)
        wakeup.poke()
        await eventually(lambda: len(steps) == 3, what="the step after the poke")
        assert steps[2] == steps[1], "a poke runs the step without waiting for time"
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_wait_for_gives_the_result_when_it_comes_in_time() -> None:
    clock = FakeClock()
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(wait_for(answer, within=1.0, clock=clock))
    await clock.wait_for_sleepers(1)
    answer.set_result("yes")
    assert await waiting == "yes"
    await eventually(lambda: clock.sleepers == 0, what="the timeout cancelled")


async def test_wait_for_times_out_on_the_clock_and_cancels_the_work() -> None:
    clock = FakeClock()
    hang = asyncio.create_task(asyncio.Event().wait())
    waiting = asyncio.create_task(wait_for(hang, within=2.0, clock=clock))
    await clock.wait_for_sleepers(1)
    await clock.advance(1.9)
    assert not waiting.done()
    await clock.advance(0.1)
    with pytest.raises(TimeoutError, match="no answer within 2 s"):
        await asyncio.wait_for(waiting, 30)
    assert hang.cancelled()
