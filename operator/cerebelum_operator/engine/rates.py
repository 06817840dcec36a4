"""Rate limits of task queues and flow keys: pure data, shared by the engine, the store and the dispatcher."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_RATE_PERIOD_MS", "RateLimit"]

# The longest period a task queue's rate limit may span (the API's and the CLI's bound). A day
# covers "N per day" quotas.
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
        # No upper bound here: a key's limit comes from a Workflow spec through `decide`, which must
        # not fail on it. A window never holds more than ``count`` starts, so memory stays bounded;
        # the API and the CLI bound a queue's period to MAX_RATE_PERIOD_MS.
        if self.count < 1 or self.period_ms < 1:
            raise ValueError(f"a rate limit is at least 1 task per 1 ms, not {self.count} per {self.period_ms} ms")

    def describe(self) -> str:
        """ "10/1s", "100/1m": short enough for a waiting hint and a table."""
        return f"{self.count}/{format_period(self.period_ms)}"


def format_period(period_ms: int) -> str:
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if period_ms % size == 0:
            return f"{period_ms // size}{unit}"
    return f"{period_ms}ms"
