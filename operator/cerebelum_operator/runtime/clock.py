"""The engine's clock: "now" in epoch milliseconds and "sleep", injected so tests can move time.

Leases, retries and timers are deadlines in epoch milliseconds, stored in the history and the
store. If they followed the wall clock, a +1 h step (NTP, an operator fixing the date) would
expire every heartbeating lease at once and a -1 h step would delay a 2 s sleep by an hour. So
`SystemClock` reads the wall clock once, at construction, and from then on advances by the
monotonic clock: a wall-clock step after start moves nothing. The price is that the engine's
epoch drifts from a corrected wall clock until the next start re-anchors it (docs/architecture.md).

Every stateful core that waits (leases, timers, the leader election, the status writer, the
review cache) takes a `Clock` for both "now" and "sleep", so its tests run on a `FakeClock`:
time moves only when the test calls `advance`, and a test waits for the core to be asleep with
`wait_for_sleepers` instead of sleeping itself.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the epoch; never goes backwards."""
        ...

    def now_s(self) -> float:
        """The same instant in seconds, for intervals and rate limits."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller until `seconds` have passed on this clock."""
        ...

    def timer(self, seconds: float) -> asyncio.Future[None]:
        """A future done once `seconds` have passed on this clock; cancel it to stop it.

        For racing a deadline against other work (`asyncio.wait`): a plain future, with no task
        and no coroutine to create, start and cancel around every wait."""
        ...


class SystemClock:
    """Epoch milliseconds anchored to the wall clock once, then advanced by the monotonic clock."""

    __slots__ = ("_anchor_monotonic_ns", "_anchor_wall_ns", "_monotonic_ns")

    def __init__(
        self,
        *,
        wall_ns: Callable[[], int] = time.time_ns,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._monotonic_ns = monotonic_ns
        # Read the monotonic clock on both sides of the wall clock and take the middle, so a
        # preemption between the two reads costs at most half its length in anchoring error.
        before = monotonic_ns()
        self._anchor_wall_ns = wall_ns()
        self._anchor_monotonic_ns = (before + monotonic_ns()) // 2

    def _now_ns(self) -> int:
        return self._anchor_wall_ns + self._monotonic_ns() - self._anchor_monotonic_ns

    def now_ms(self) -> int:
        return self._now_ns() // 1_000_000

    def now_s(self) -> float:
        return self._now_ns() / 1e9

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def timer(self, seconds: float) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(max(0.0, seconds), _resolve, future)
        future.add_done_callback(lambda _: handle.cancel())
        return future


class FakeClock:
    """A clock that moves only when told to: `advance` wakes every sleeper whose time has come.

    Sleepers wake in deadline order, each given a turn of the event loop, so code woken by one
    deadline runs before the clock reaches the next one.
    """

    def __init__(self, *, start_ms: int = 1_700_000_000_000) -> None:
        self._now_ns = start_ms * 1_000_000
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._changed = asyncio.Event() if _has_running_loop() else None

    def now_ms(self) -> int:
        return self._now_ns // 1_000_000

    def now_s(self) -> float:
        return self._now_ns / 1e9

    @property
    def sleepers(self) -> int:
        """How many callers are asleep on this clock now."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        await self.timer(seconds)

    def timer(self, seconds: float) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if seconds <= 0:
            loop.call_soon(_resolve, future)
            return future
        heapq.heappush(self._sleepers, (self._now_ns + int(seconds * 1e9), next(self._order), future))
        self._notify()
        return future

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking each sleeper due on the way, in order."""
        target = self._now_ns + int(seconds * 1e9)
        while self._sleepers and self._sleepers[0][0] <= target:
            due, _, future = heapq.heappop(self._sleepers)
            self._now_ns = max(self._now_ns, due)
            if not future.done():
                future.set_result(None)
                # Let the woken task (and what it schedules) run before time moves on.
                for _ in range(5):
                    await asyncio.sleep(0)
        self._now_ns = max(self._now_ns, target)
        await asyncio.sleep(0)

    async def wait_for_sleepers(self, count: int = 1, *, within: float = 30.0) -> None:
        """Wait (in real time, bounded) until at least `count` callers are asleep on this clock."""

        async def reached() -> None:
            while self.sleepers < count:
                changed = self._event()
                changed.clear()
                if self.sleepers >= count:
                    return
                await changed.wait()

        try:
            await asyncio.wait_for(reached(), within)
        except TimeoutError:
            raise AssertionError(
                f"expected {count} sleeper(s) on the fake clock within {within} s, saw {self.sleepers}"
            ) from None

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        self._event().set()


def _has_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
