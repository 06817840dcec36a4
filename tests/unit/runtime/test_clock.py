"""The engine's clock: anchored to the wall clock once, then monotonic (finding 11 of issue 13)."""

from __future__ import annotations

import asyncio

from cerebelum_operator.runtime import FakeClock, SystemClock

HOUR_NS = 3_600 * 1_000_000_000
START_WALL_NS = 1_700_000_000_000 * 1_000_000


class FakeTime:
    """A wall clock and a monotonic clock the test moves independently, as the kernel would."""

    def __init__(self) -> None:
        self.wall = START_WALL_NS
        self.monotonic = 42_000_000_000

    def wall_ns(self) -> int:
        return self.wall

    def monotonic_ns(self) -> int:
        return self.monotonic

    def elapse(self, ms: int) -> None:
        self.wall += ms * 1_000_000
        self.monotonic += ms * 1_000_000


def clock_on(fake: FakeTime) -> SystemClock:
    return SystemClock(wall_ns=fake.wall_ns, monotonic_ns=fake.monotonic_ns)


def test_the_engine_clock_starts_at_the_wall_time_and_advances_with_elapsed_time() -> None:
    fake = FakeTime()
    clock = clock_on(fake)
    assert clock.now_ms() == START_WALL_NS // 1_000_000
    fake.elapse(2_500)
    assert clock.now_ms() == START_WALL_NS // 1_000_000 + 2_500


def test_a_wall_clock_step_forward_of_an_hour_does_not_expire_a_lease_early() -> None:
    fake = FakeTime()
    clock = clock_on(fake)
    lease_expires_at_ms = clock.now_ms() + 30_000
    fake.elapse(1_000)
    fake.wall += HOUR_NS  # the administrator (or NTP) steps the wall clock
    assert clock.now_ms() < lease_expires_at_ms
    assert lease_expires_at_ms - clock.now_ms() == 29_000


def test_a_wall_clock_step_back_of_an_hour_does_not_delay_a_two_second_sleep() -> None:
    fake = FakeTime()
    clock = clock_on(fake)
    wake_at_ms = clock.now_ms() + 2_000
    fake.wall -= HOUR_NS
    fake.elapse(2_000)
    assert clock.now_ms() >= wake_at_ms


def test_the_engine_clock_never_goes_backwards_when_the_wall_clock_does() -> None:
    fake = FakeTime()
    clock = clock_on(fake)
    readings = []
    for step in range(10):
        fake.wall -= HOUR_NS if step % 2 else -HOUR_NS
        fake.elapse(1)
        readings.append(clock.now_ms())
    assert readings == sorted(readings)
    assert readings[-1] - readings[0] == 9


def test_a_new_clock_re_anchors_to_the_corrected_wall_time() -> None:
    fake = FakeTime()
    clock_on(fake)
    fake.wall += HOUR_NS
    assert clock_on(fake).now_ms() == (START_WALL_NS + HOUR_NS) // 1_000_000


async def test_fake_clock_wakes_sleepers_in_deadline_order_only_when_advanced() -> None:
    import asyncio

    from cerebelum_operator.runtime import FakeClock

    clock = FakeClock(start_ms=1_000)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(f"{name}@{clock.now_ms()}")

    tasks = [asyncio.create_task(sleeper("late", 2.0)), asyncio.create_task(sleeper("early", 0.5))]
    await clock.wait_for_sleepers(2)
    assert woke == []
    await clock.advance(1.0)
    assert woke == ["early@1500"]
    assert clock.now_ms() == 2_000
    await clock.advance(1.0)
    assert woke == ["early@1500", "late@3000"]
    await asyncio.gather(*tasks)
    assert clock.sleepers == 0


async def test_waiting_for_sleepers_that_never_come_fails_with_a_clear_message() -> None:
    import pytest

    from cerebelum_operator.runtime import FakeClock

    with pytest.raises(AssertionError, match="expected 1 sleeper"):
        await FakeClock().wait_for_sleepers(1, within=0.05)


async def test_a_timer_is_a_plain_future_done_when_the_clock_passes_its_time_and_stopped_by_cancel() -> None:
    clock = FakeClock()
    due, stopped = clock.timer(5), clock.timer(5)
    assert clock.sleepers == 2
    stopped.cancel()
    await clock.advance(4.9)
    assert not due.done() and clock.sleepers == 1
    await clock.advance(0.1)
    assert due.done() and due.result() is None and clock.sleepers == 0


async def test_the_system_clocks_timer_fires_once_and_a_cancelled_one_never() -> None:
    clock = SystemClock()
    fired, cancelled = clock.timer(0), clock.timer(0)
    cancelled.cancel()
    await asyncio.wait_for(fired, 30)  # a bound, not a synchronisation: due at once
    assert fired.result() is None and cancelled.cancelled()
