"""The engine's clock in epoch milliseconds; injected so tests can move time.

Leases, retries and timers are deadlines in epoch milliseconds, stored in the history and the
store. If they followed the wall clock, a +1 h step (NTP, an operator fixing the date) would
expire every heartbeating lease at once and a -1 h step would delay a 2 s sleep by an hour. So
`SystemClock` reads the wall clock once, at construction, and from then on advances by the
monotonic clock: a wall-clock step after start moves nothing. The price is that the engine's
epoch drifts from a corrected wall clock until the next start re-anchors it (docs/architecture.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def now_ms(self) -> int: ...


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

    def now_ms(self) -> int:
        return (self._anchor_wall_ns + self._monotonic_ns() - self._anchor_monotonic_ns) // 1_000_000
