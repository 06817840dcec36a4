"""Durable timers: rows in the store; only the ones due soon are held in memory.

A sleeping execution costs one row, not a coroutine, so a million of them wait for free: memory
holds at most `batch` timers (the soonest, read from the store by due time) plus the ones that
came in since within that window (capped too), whatever the number of sleepers.

Waking many at one instant: due timers fire in batches of `wake_batch` executions, each batch
one read of the executions it wakes (`EngineService.handle_each`) and decisions that share group
commits, with at most `batches_in_flight` batches at a time and one batch taken per turn of the
event loop. So a million timers due together never hold the loop or the store's thread for long:
a start, a poll or a completion in between waits for at most a batch or two, not for the wake.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Sequence

from ..engine import Decision, Reply
from ..engine import actions as act
from ..engine import commands as cmd
from ..store import ShardNotOwned
from .clock import Clock
from .database import Database
from .engine_service import EngineService, ExecutionNotFound
from .wakeup import Wakeup

__all__ = ["TimerService"]

log = logging.getLogger(__name__)


class TimerService:
    """Fires the store's timers when they are due, on the injected clock.

    Invariant: every timer due at or before ``_loaded_until_ms`` is in the heap or being fired,
    so the store is read only when the heap runs low (`_refill`), never per timer.
    """

    def __init__(
        self,
        db: Database,
        engine: EngineService,
        *,
        clock: Clock,
        horizon_ms: int = 60_000,
        batch: int = 5_000,
        wake_batch: int = 256,
        batches_in_flight: int = 2,
    ) -> None:
        if batch < 2 * wake_batch * batches_in_flight:
            raise ValueError("batch must be at least twice the timers in flight (wake_batch * batches_in_flight)")
        self.db = db
        self.engine = engine
        self.clock = clock
        self.horizon_ms = horizon_ms
        self.batch = batch
        self.wake_batch = wake_batch
        self._gate = asyncio.Semaphore(batches_in_flight)
        self._batches: set[asyncio.Task[None]] = set()
        self._heap: list[tuple[int, str, str]] = []
        self._known: set[str] = set()  # the timers in the heap, not cancelled
        self._firing: set[str] = set()  # taken from the heap, their decisions not settled yet
        self._loaded_until_ms = 0
        self._wakeup = Wakeup(clock=clock)
        self._task: asyncio.Task[None] | None = None
        self.taken = 0  # timers taken out of the heap to fire
        self.fired = 0  # timers whose decision was made (accepted or not), for tests and metrics
        self.batches = 0
        engine.add_listener(self.on_actions)

    @property
    def held(self) -> int:
        """Timers held in memory now (waiting in the heap or being fired), whatever the store holds."""
        return len(self._known) + len(self._firing)

    async def start(self) -> None:
        await self._refill()
        self._task = asyncio.create_task(self._wakeup.run(self._fire_due), name="timers")

    async def rescan(self) -> None:
        """Read the due timers again: the store's reads of work now cover shards just taken."""
        await self._refill()
        self._wakeup.poke()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for firing in list(self._batches):
            firing.cancel()
        await asyncio.gather(*self._batches, return_exceptions=True)

    def on_actions(self, execution_id: str, workflow: str, actions: list[act.Action]) -> None:
        for action in actions:
            if isinstance(action, act.StartTimer) and action.fire_at_ms <= self._loaded_until_ms:
                if len(self._known) >= 2 * self.batch:
                    # Full: leave it in the store, and pull the window in front of it so a refill reads it.
                    self._loaded_until_ms = min(self._loaded_until_ms, action.fire_at_ms - 1)
                else:
                    self._push(action.fire_at_ms, action.timer_id, execution_id)
            elif isinstance(action, act.CancelTimer):
                self._known.discard(action.timer_id)
                if len(self._heap) > 2 * len(self._known) + self.batch:  # mostly cancelled: drop them
                    self._heap = [entry for entry in self._heap if entry[1] in self._known]
                    heapq.heapify(self._heap)

    def _push(self, fire_at_ms: int, timer_id: str, execution_id: str) -> None:
        if timer_id in self._known or timer_id in self._firing:
            return
        self._known.add(timer_id)
        heapq.heappush(self._heap, (fire_at_ms, timer_id, execution_id))
        self._wakeup.poke()

    async def _refill(self) -> None:
        until = self.clock.now_ms() + self.horizon_ms
        rows = await self.db.run(self.db.store.due_timers, until_ms=until, limit=self.batch)
        for row in rows:
            self._push(row.fire_at_ms, row.timer_id, row.execution_id)
        # With a full batch, later timers may be missing, even some due in the same millisecond as
        # the last one read: only trust the window up to just before it.
        self._loaded_until_ms = rows[-1].fire_at_ms - 1 if len(rows) >= self.batch else until

    def _take_due(self, now: int) -> list[tuple[str, str]]:
        """Up to `wake_batch` due timers out of the heap, soonest first: (timer id, execution id)."""
        due: list[tuple[str, str]] = []
        while self._heap and self._heap[0][0] <= now and len(due) < self.wake_batch:
            _, timer_id, execution_id = heapq.heappop(self._heap)
            if timer_id not in self._known:
                continue  # cancelled meanwhile
            self._known.discard(timer_id)
            self._firing.add(timer_id)
            due.append((timer_id, execution_id))
        self.taken += len(due)
        return due

    async def _fire_due(self) -> float:
        """Start one batch of what is due, refill when the heap runs low; seconds until more is due.

        One batch per call: the wake-up loop yields to the event loop between calls.
        """
        now = self.clock.now_ms()
        due = self._take_due(now)
        if due:
            await self._gate.acquire()  # bounds the batches in flight: the wake runs at the store's pace
            firing = asyncio.create_task(self._fire_batch(due), name="timers-batch")
            self._batches.add(firing)
            firing.add_done_callback(self._batches.discard)
        # Every timer not in the heap falls due after all in it: while some in it are due, or many
        # are left, the store has nothing sooner to give.
        drained = not self._heap or self._heap[0][0] > now or len(self._heap) < self.batch // 4
        if drained and now >= self._loaded_until_ms - self.horizon_ms // 2:
            await self._refill()
        if self._heap and self._heap[0][0] <= self.clock.now_ms():
            return 0.0
        next_due = self._heap[0][0] if self._heap else self._loaded_until_ms
        return max(0.001, min((next_due - self.clock.now_ms()) / 1000, self.horizon_ms / 2000))

    async def _fire_batch(self, due: Sequence[tuple[str, str]]) -> None:
        try:
            outcomes = await self.engine.handle_each(
                [(execution_id, cmd.TimerFired(timer_id)) for timer_id, execution_id in due]
            )
            self.batches += 1
            for (timer_id, execution_id), outcome in zip(due, outcomes, strict=True):
                await self._settle(timer_id, execution_id, outcome)
        finally:
            self._firing.difference_update(timer_id for timer_id, _ in due)
            self._gate.release()

    async def _settle(self, timer_id: str, execution_id: str, outcome: Decision | BaseException) -> None:
        if isinstance(outcome, ExecutionNotFound):
            await self.db.run(self.db.store.delete_timer, timer_id)
        elif isinstance(outcome, asyncio.CancelledError):
            raise outcome
        elif isinstance(outcome, ShardNotOwned):
            return  # its shard changed hands: the timer is still in the store, for the next owner to fire
        elif isinstance(outcome, BaseException):
            log.error("timer %s of %s failed; retrying soon", timer_id, execution_id, exc_info=outcome)
            self._firing.discard(timer_id)
            self._push(self.clock.now_ms() + 1000, timer_id, execution_id)
            return
        elif outcome.reply != Reply.ACCEPTED:
            await self.db.run(self.db.store.delete_timer, timer_id)
        self.fired += 1
