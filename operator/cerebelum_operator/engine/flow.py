"""Flow-control values a task carries: pure data, shared by the engine, the store and the dispatcher."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_RATE_PERIOD_MS", "RateLimit"]

# The longest period a rate limit may span: the dispatcher keeps (and the store records) the starts
# of that long a window, so a bound keeps both small. A day covers "N per day" quotas.
MAX_RATE_PERIOD_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` tasks start in any ``period_ms`` (a sliding window, not a refilling bucket).

    A sliding window is what "never exceeds N per period, measured from the history" means: any
    interval of that length holds at most ``count`` starts. A token bucket would allow a burst of
    twice the rate across a refill.
    """

    count: int
    period_ms: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"a rate limit allows at least 1 task per period, not {self.count}")
        if not 1 <= self.period_ms <= MAX_RATE_PERIOD_MS:
            raise ValueError(f"a rate limit's period is 1 ms to {MAX_RATE_PERIOD_MS} ms, not {self.period_ms} ms")

    def describe(self) -> str:
        """ "10/1s", "100/1m": short enough for a waiting hint and a table."""
        return f"{self.count}/{format_period(self.period_ms)}"


def format_period(period_ms: int) -> str:
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if period_ms % size == 0:
            return f"{period_ms // size}{unit}"
    return f"{period_ms}ms"
