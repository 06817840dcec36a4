"""The operator's API write budget: one token bucket, on the injected clock.

The status writer, the Events and finalizer patches and the reconciler's own writes all spend
from the one bucket the status writer holds, so their sum, not each alone, is what the API
server sees. The TokenReview budget is a second bucket of the same kind that refuses instead of
waiting: a stranger's review is not worth queueing for.
"""

from __future__ import annotations

import asyncio

from ..runtime import Clock

__all__ = ["TokenBucket"]


class TokenBucket:
    """At most `rate` tokens per second on average, `burst` at once; time from `clock`."""

    def __init__(self, *, rate: float, burst: int, clock: Clock) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs a rate > 0 and a burst >= 1, not {rate} and {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock.now_s()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock.now_s()
        self._tokens = min(float(self.burst), self._tokens + max(0.0, now - self._updated) * self.rate)
        self._updated = now

    def try_take(self) -> bool:
        """Take a token if one is there now; never waits."""
        self._refill()
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    async def take(self) -> None:
        """Take a token, sleeping on the clock until one is there; callers are served in turn."""
        async with self._lock:
            while not self.try_take():
                await self._clock.sleep((1.0 - self._tokens) / self.rate)
