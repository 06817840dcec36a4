"""When a finished Execution object is due for deletion: pure, so its rules run on a fake clock.

An object is due its time-to-live after it finished. The finish time is read from the object's
own status (`finishedAt`, or for an Execution refused before it ran the time its conditions were
last set), never from a timer kept in memory, so an operator that restarts computes the same due
time from what it lists. The time-to-live is the Workflow's `ttlAfterFinished` as the execution
started with it, else the operator's default, and never longer than the store's retention period:
an object must not outlive the history it shows.

Only Succeeded, Failed and Cancelled objects expire. An object never shows `ContinuedAsNew`: it
views a whole continue-as-new chain, whose latest run is what its phase says (`status_writer`).
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from ..model.durations import format_duration, parse_duration

__all__ = ["EXPIRING_PHASES", "NEVER", "ExpiryQueue", "TtlPolicy", "due_at_ms", "finished_at_ms", "parse_ttl"]

JSON = Any
K = TypeVar("K")

NEVER = "never"
EXPIRING_PHASES = frozenset({"Succeeded", "Failed", "Cancelled"})


def parse_ttl(text: str) -> int | None:
    """A time-to-live in milliseconds, None for ``never``; `ValueError` for anything else."""
    if text.strip() == NEVER:
        return None
    return parse_duration(text)


def ttl_text(ttl_ms: int | None) -> str:
    return NEVER if ttl_ms is None else format_duration(ttl_ms)


@dataclass(frozen=True, kw_only=True)
class TtlPolicy:
    """The operator's rule: `default_ms` where a Workflow says nothing (None: keep for ever), and
    `retention_ms`, the store's retention period, which caps every time-to-live (None: no cap)."""

    default_ms: int | None = None
    retention_ms: int | None = None

    def __post_init__(self) -> None:
        if self.retention_ms is not None and (self.default_ms is None or self.default_ms > self.retention_ms):
            raise ValueError(
                f"the Execution objects' time-to-live ({ttl_text(self.default_ms)}) is longer than the store's"
                f" retention period ({format_duration(self.retention_ms)}): objects would outlive their histories;"
                " set --execution-ttl to the retention period or less"
            )

    def ttl_ms(self, declared: str | None) -> int | None:
        """The time-to-live for a Workflow's ``ttlAfterFinished`` (None: not set); a value the
        Workflow schema would refuse counts as not set."""
        ttl = self.default_ms
        if declared is not None:
            with contextlib.suppress(ValueError):
                ttl = parse_ttl(declared)
        if self.retention_ms is not None:
            ttl = self.retention_ms if ttl is None else min(ttl, self.retention_ms)
        return ttl


def _instant_ms(value: JSON) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return round(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def finished_at_ms(status: Mapping[str, JSON]) -> int | None:
    """When the object's execution finished, from its status: ``finishedAt``, else (an Execution
    refused before it started has none) the latest ``lastTransitionTime`` of its conditions."""
    finished = _instant_ms(status.get("finishedAt"))
    if finished is not None:
        return finished
    times = [
        _instant_ms(entry.get("lastTransitionTime"))
        for entry in status.get("conditions") or []
        if isinstance(entry, Mapping)
    ]
    known = [time for time in times if time is not None]
    return max(known) if known else None


def due_at_ms(status: Mapping[str, JSON], *, ttl_ms: int | None) -> int | None:
    """When the object is to be deleted; None while it has not finished, or when it is kept for ever."""
    if ttl_ms is None or status.get("phase") not in EXPIRING_PHASES:
        return None
    finished = finished_at_ms(status)
    return None if finished is None else finished + ttl_ms


class ExpiryQueue(Generic[K]):
    """Due times by key, earliest first; putting a key again moves it (the old entry is skipped)."""

    def __init__(self) -> None:
        self._due: dict[K, int] = {}
        self._heap: list[tuple[int, int, K]] = []
        self._order = 0  # ties pop in the order they were put; keys need not be comparable

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def put(self, key: K, due_ms: int) -> None:
        self._due[key] = due_ms
        self._order += 1
        heapq.heappush(self._heap, (due_ms, self._order, key))

    def discard(self, key: K) -> None:
        self._due.pop(key, None)

    def next_due_ms(self) -> int | None:
        self._skip_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int, *, limit: int) -> list[K]:
        """Up to `limit` keys due at `now_ms` or before, earliest first; they leave the queue."""
        due: list[K] = []
        while len(due) < limit:
            self._skip_stale()
            if not self._heap or self._heap[0][0] > now_ms:
                break
            _, _, key = heapq.heappop(self._heap)
            del self._due[key]
            due.append(key)
        return due

    def _skip_stale(self) -> None:
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
