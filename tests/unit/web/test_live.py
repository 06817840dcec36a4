"""The change feed behind live pages: counts changes, remembers whose, wakes waiters without blocking."""

from __future__ import annotations

import asyncio

import pytest

from cerebelum_operator.runtime.clock import FakeClock
from cerebelum_operator.web.live import ChangeFeed, FeedFull
from tests.support.waiting import eventually


async def test_a_waiter_wakes_when_an_execution_changes() -> None:
    feed = ChangeFeed(clock=FakeClock())
    waiting = asyncio.create_task(feed.wait_past(feed.version, timeout_s=3600))
    await asyncio.sleep(0)
    feed.changed("ex-1")
    assert await asyncio.wait_for(waiting, 10) == 1
    assert feed.version_of("ex-1") == 1
    assert feed.version_of("ex-2") == 0


async def test_a_waiter_already_behind_returns_at_once() -> None:
    feed = ChangeFeed(clock=FakeClock())
    feed.changed("a")
    feed.changed("b")
    assert await asyncio.wait_for(feed.wait_past(0, timeout_s=3600), 10) == 2


async def test_a_waiter_gives_up_when_the_clock_passes_its_timeout() -> None:
    clock = FakeClock()
    feed = ChangeFeed(clock=clock)
    waiting = asyncio.create_task(feed.wait_past(0, timeout_s=15))
    await eventually(lambda: clock.sleepers == 1, what="the waiter asleep on the clock")
    await clock.advance(14)
    await asyncio.sleep(0)
    assert not waiting.done()
    await clock.advance(1)
    assert await asyncio.wait_for(waiting, 10) == 0


def test_streams_past_the_bound_are_refused() -> None:
    feed = ChangeFeed(clock=FakeClock(), max_streams=2)
    feed.open_stream()
    feed.open_stream()
    with pytest.raises(FeedFull, match="at most 2"):
        feed.open_stream()
    feed.close_stream()
    feed.open_stream()
