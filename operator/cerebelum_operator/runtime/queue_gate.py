"""Flow control of task queues as a pure core: pauses, rate limits per queue and per flow key.

`FlowGate` reads no clock and does no I/O: each call takes ``now_ms``. The dispatcher's book asks
it, before a ready task is offered or taken, whether the task may start now (`block`: None, or
why not and until when), charges the task while its lease is being decided, and records the start
once the lease committed (`started`). After a restart it is rebuilt from the store: the queues'
settings and the starts of the last period (`task_starts`, written in each lease's transaction).

*Exactness (the invariant, measured from the history):* at most ``count`` tasks of a limited
queue or key start in any ``period_ms``, i.e. for the sorted StepStarted times of that queue (or
key), ``t[i + count] - t[i] >= period_ms``. It holds because

1. a task is admitted at time ``o`` only if the starts recorded after ``o - period`` plus the
   tasks in flight (offered, lease not yet known) are fewer than ``count``;
2. a lease's decision reads the clock after the offer (a rate-limited task leased eagerly, inside
   the decision that schedules it, is admitted at that decision's time), so its history time
   ``h >= o``;
3. a start is recorded at a time ``>= h`` (when the committed lease is seen), or, when a lease's
   commit failed in a way that may have landed, counted as a start at once (never forgotten);
4. a restarted engine loads the starts at their decisions' times.

So for any two starts ``h_j <= h_k`` less than a period apart, the later one's offer saw the
earlier one (in flight or recorded), and a window never holds more than ``count``.

Engines that split the shards each see their own starts only: there the store counts every
engine's in each lease's transaction and refuses one that would pass (`RateLimitReached`); the
gate then holds the queue until the store's window has room (`hold`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from ..engine.rates import MAX_RATE_PERIOD_MS, RateLimit
from ..store import TaskStartRow

__all__ = ["Block", "FlowGate", "QueueControl", "RateWindow"]


@dataclass(frozen=True, slots=True)
class QueueControl:
    """An engine-wide setting of a task queue (`task_queues` in the store)."""

    paused: bool = False
    note: str = ""  # why it is paused, for whoever wonders
    rate_limit: RateLimit | None = None


class Block(NamedTuple):
    """Why a task may not start now, and when it may (None: when something else changes)."""

    reason: str
    until_ms: int | None


@dataclass(slots=True)
class RateWindow:
    """The starts of the last period, oldest first, and the starts in flight (lease being decided)."""

    times: list[int] = field(default_factory=list)
    in_flight: int = 0

    def trim(self, now_ms: int, span_ms: int) -> None:
        """Forget starts no window of ``span_ms`` can see any more."""
        cut = bisect.bisect_right(self.times, now_ms - span_ms)
        if cut:
            del self.times[:cut]

    def used(self, now_ms: int, limit: RateLimit) -> int:
        """Starts in (now - period, now], and those in flight."""
        return len(self.times) - bisect.bisect_right(self.times, now_ms - limit.period_ms) + self.in_flight

    def frees_at(self, now_ms: int, limit: RateLimit) -> int | None:
        """When a start may go ahead: now, a later time, or None (only when a lease in flight resolves)."""
        excess = self.used(now_ms, limit) - limit.count + 1
        if excess <= 0:
            return now_ms
        first = bisect.bisect_right(self.times, now_ms - limit.period_ms)
        recorded = len(self.times) - first
        if excess > recorded:
            return None
        return self.times[first + excess - 1] + limit.period_ms

    def record(self, at_ms: int) -> None:
        bisect.insort(self.times, at_ms)  # nearly always appended: starts come in time order

    def idle(self) -> bool:
        return not self.times and not self.in_flight


class _Charge(NamedTuple):
    queue: str | None  # the queue's window it is charged to (None: the queue has no limit)
    key: str | None  # the key's window (None: no key limit)


class FlowGate:
    """Which tasks may start now; pure, fed by the book and the dispatcher."""

    def __init__(self) -> None:
        self._controls: dict[str, QueueControl] = {}
        self._queues: dict[str, RateWindow] = {}
        self._keys: dict[str, RateWindow] = {}
        self._key_spans: dict[str, int] = {}  # the longest period any task of the key asked for
        self._charged: dict[str, _Charge] = {}
        self._held: dict[str, int] = {}  # queue -> until when the store said its shared window is full
        self._held_keys: dict[str, int] = {}  # the same for flow keys

    # -- settings ------------------------------------------------------------------------------

    def controls(self) -> dict[str, QueueControl]:
        return dict(self._controls)

    def control(self, queue: str) -> QueueControl:
        return self._controls.get(queue) or QueueControl()

    def set_control(self, queue: str, control: QueueControl) -> None:
        """A queue's new setting; a limit counts starts from now (and those the store recorded)."""
        if control == QueueControl():
            self._controls.pop(queue, None)
        else:
            self._controls[queue] = control
        if control.rate_limit is not None:
            self._queues.setdefault(queue, RateWindow())

    def load(self, controls: dict[str, QueueControl], starts: Iterable[TaskStartRow], now_ms: int) -> None:
        """Rebuild after a restart: the settings, and the windows from the starts the store recorded."""
        for queue, control in controls.items():
            self.set_control(queue, control)
        for start in starts:
            if start.task_queue in self._queues:
                self._queues[start.task_queue].record(start.started_at_ms)
            if start.flow_key is not None:
                self._keys.setdefault(start.flow_key, RateWindow()).record(start.started_at_ms)
                span = start.expires_at_ms - start.started_at_ms
                self._key_spans[start.flow_key] = max(self._key_spans.get(start.flow_key, 0), span)
        self.trim(now_ms)

    # -- admission -----------------------------------------------------------------------------

    def queue_block(self, queue: str, now_ms: int) -> Block | None:
        """Why no task of ``queue`` may start now (paused, or its rate used up), if so."""
        control = self._controls.get(queue)
        if control is None:
            return None
        if control.paused:
            note = f" ({control.note})" if control.note else ""
            return Block(f"task queue '{queue}' is paused{note}", None)
        limit = control.rate_limit
        if limit is None:
            return None
        frees = self._queues.setdefault(queue, RateWindow()).frees_at(now_ms, limit)
        held = self._held.get(queue, now_ms)  # the other engines' starts, as the store counted them
        if held > now_ms:
            frees = held if frees is None else max(frees, held)
        if frees == now_ms:
            return None
        return Block(f"rate limited: queue '{queue}' {limit.describe()}", frees)

    def key_block(self, key: str | None, limit: RateLimit | None, now_ms: int) -> Block | None:
        """Why a task of flow key ``key`` with its ``limit`` may not start now, if so."""
        if key is None or limit is None:
            return None
        window = self._keys.get(key)
        held = self._held_keys.get(key, now_ms)
        if window is None and held <= now_ms:
            return None
        frees = now_ms if window is None else window.frees_at(now_ms, limit)
        if held > now_ms:
            frees = held if frees is None else max(frees, held)
        if frees == now_ms:
            return None
        return Block(f"rate limited: key '{key}' {limit.describe()}", frees)

    def block(self, queue: str, key: str | None, limit: RateLimit | None, now_ms: int) -> Block | None:
        return self.queue_block(queue, now_ms) or self.key_block(key, limit, now_ms)

    def limits(self, queue: str, key: str | None, limit: RateLimit | None) -> bool:
        """Whether any rate limit counts this task's start (such a task is never leased eagerly)."""
        control = self._controls.get(queue)
        return (control is not None and control.rate_limit is not None) or (key is not None and limit is not None)

    # -- a task's way through ------------------------------------------------------------------

    def charge(self, token: str, queue: str, key: str | None, limit: RateLimit | None) -> None:
        """The task was offered: its lease is being decided, so it takes a place in its windows."""
        if token in self._charged:
            return
        control = self._controls.get(queue)
        charged_queue = queue if control is not None and control.rate_limit is not None else None
        charged_key = key if key is not None and limit is not None else None
        if charged_queue is None and charged_key is None:
            return
        if charged_queue is not None:
            self._queues.setdefault(charged_queue, RateWindow()).in_flight += 1
        if charged_key is not None and limit is not None:
            self._keys.setdefault(charged_key, RateWindow()).in_flight += 1
            self._key_spans[charged_key] = max(self._key_spans.get(charged_key, 0), limit.period_ms)
        self._charged[token] = _Charge(charged_queue, charged_key)

    def uncharge(self, token: str) -> _Charge | None:
        """The lease was refused or never asked for (the poll went away): its place is free again."""
        charge = self._charged.pop(token, None)
        if charge is not None:
            if charge.queue is not None:
                self._queues[charge.queue].in_flight -= 1
            if charge.key is not None:
                self._keys[charge.key].in_flight -= 1
        return charge

    def started(self, token: str, queue: str, key: str | None, limit: RateLimit | None, at_ms: int) -> None:
        """The task's lease committed (or may have): a start at ``at_ms``, never earlier than its decision."""
        self.uncharge(token)
        control = self._controls.get(queue)
        if control is not None and control.rate_limit is not None:
            self._queues.setdefault(queue, RateWindow()).record(at_ms)
        if key is not None and limit is not None:
            self._keys.setdefault(key, RateWindow()).record(at_ms)
            self._key_spans[key] = max(self._key_spans.get(key, 0), limit.period_ms)

    def assume_started(self, token: str, at_ms: int) -> None:
        """A lease whose commit may have landed unseen: its charge turns into a start (never forgotten)."""
        charge = self.uncharge(token)
        if charge is not None:
            if charge.queue is not None:
                self._queues[charge.queue].record(at_ms)
            if charge.key is not None:
                self._keys[charge.key].record(at_ms)

    def hold(self, queue: str | None, key: str | None, until_ms: int) -> None:
        """Engines that split the shards: the store refused a lease because every engine's starts fill the
        window of ``queue`` (or of flow ``key``) until ``until_ms`` (`RateLimitReached`); none of its tasks
        may start before."""
        if queue is not None:
            self._held[queue] = max(self._held.get(queue, 0), until_ms)
        if key is not None:
            self._held_keys[key] = max(self._held_keys.get(key, 0), until_ms)

    def trim(self, now_ms: int) -> None:
        """Forget starts older than every window, and windows with nothing left (bounded memory)."""
        for held in (self._held, self._held_keys):
            for name, until in list(held.items()):
                if until <= now_ms:
                    del held[name]
        for queue, window in list(self._queues.items()):
            control = self._controls.get(queue)
            if control is None or control.rate_limit is None:
                if not window.in_flight:
                    del self._queues[queue]
                continue
            window.trim(now_ms, control.rate_limit.period_ms)
        for key, window in list(self._keys.items()):
            window.trim(now_ms, self._key_spans.get(key, MAX_RATE_PERIOD_MS))
            if window.idle():
                del self._keys[key]
                self._key_spans.pop(key, None)

    def longest_period_ms(self) -> int:
        """How far back the starts a restart needs go (the store keeps at least that much)."""
        periods = [c.rate_limit.period_ms for c in self._controls.values() if c.rate_limit is not None]
        return max([*periods, *self._key_spans.values(), 0])
