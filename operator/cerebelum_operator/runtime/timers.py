"""Durable timers: rows in the store; only the ones due soon are held in memory.

A sleeping execution costs one row, not a coroutine, so a million of them wait for free.
"""

from __future__ import annotations

import asyncio
import heapq
import logging

from ..engine import Reply
from ..engine import actions as act
from ..engine import commands as cmd
from .clock import Clock
from .database import Database
from .engine_service import EngineService, ExecutionNotFound
from .wakeup import Wakeup

__all__ = ["TimerService"]

log = logging.getLogger(__name__)


class TimerService:
    def __init__(
        self,
        db: Database,
        engine: EngineService,
        *,
        clock: Clock,
        horizon_ms: int = 60_000,
        batch: int = 5_000,
        concurrency: int = 256,
    ) -> None:
        self.db = db
        self.engine = engine
        self.clock = clock
        self.horizon_ms = horizon_ms
        self.batch = batch
        self.concurrency = concurrency
        self._gate = asyncio.Semaphore(concurrency)
        self._firing: set[asyncio.Task[None]] = set()
        self._heap: list[tuple[int, str, str]] = []
        self._known: set[str] = set()
        self._loaded_until_ms = 0
        self._wakeup = Wakeup(clock=clock)
        self._task: asyncio.Task[None] | None = None
        engine.add_listener(self.on_actions)

    async def start(self) -> None:
        await self._refill()
        self._task = asyncio.create_task(self._wakeup.run(self._fire_due), name="timers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for firing in list(self._firing):
            firing.cancel()
        await asyncio.gather(*self._firing, return_exceptions=True)

    def on_actions(self, execution_id: str, workflow: str, actions: list[act.Action]) -> None:
        for action in actions:
            if isinstance(action, act.StartTimer) and action.fire_at_ms <= self._loaded_until_ms:
                self._push(action.fire_at_ms, action.timer_id, execution_id)
            elif isinstance(action, act.CancelTimer):
                self._known.discard(action.timer_id)

    def _push(self, fire_at_ms: int, timer_id: str, execution_id: str) -> None:
        if timer_id in self._known:
            return
        self._known.add(timer_id)
        heapq.heappush(self._heap, (fire_at_ms, timer_id, execution_id))
        self._wakeup.poke()

    async def _refill(self) -> None:
        until = self.clock.now_ms() + self.horizon_ms
        rows = await self.db.run(self.db.store.due_timers, until_ms=until, limit=self.batch)
        for row in rows:
            self._push(row.fire_at_ms, row.timer_id, row.execution_id)
        # With a full batch, later timers may be missing: only trust the window up to the last one.
        self._loaded_until_ms = rows[-1].fire_at_ms if len(rows) >= self.batch else until

    async def _fire_due(self) -> float:
        """Fire what is due, refill the window when half of it has passed; seconds until more is due."""
        now = self.clock.now_ms()
        while self._heap and self._heap[0][0] <= now:
            _, timer_id, execution_id = heapq.heappop(self._heap)
            if timer_id not in self._known:
                continue
            self._known.discard(timer_id)
            # Many at once, so their decisions share commits: 100k timers due together must
            # not cost 100k transactions one after the other. The gate bounds the work in flight.
            await self._gate.acquire()
            firing = asyncio.create_task(self._fire_and_release(timer_id, execution_id))
            self._firing.add(firing)
            firing.add_done_callback(self._firing.discard)
            now = self.clock.now_ms()
        if now >= self._loaded_until_ms - self.horizon_ms // 2:
            await self._refill()
        next_due = self._heap[0][0] if self._heap else self._loaded_until_ms
        return max(0.001, min((next_due - self.clock.now_ms()) / 1000, self.horizon_ms / 2000))

    async def _fire_and_release(self, timer_id: str, execution_id: str) -> None:
        try:
            await self._fire(timer_id, execution_id)
        finally:
            self._gate.release()

    async def _fire(self, timer_id: str, execution_id: str) -> None:
        try:
            decision = await self.engine.handle(execution_id, cmd.TimerFired(timer_id))
        except ExecutionNotFound:
            await self.db.run(self.db.store.delete_timer, timer_id)
            return
        except Exception:
            log.exception("timer %s of %s failed; retrying soon", timer_id, execution_id)
            self._push(self.clock.now_ms() + 1000, timer_id, execution_id)
            return
        if decision.reply != Reply.ACCEPTED:
            await self.db.run(self.db.store.delete_timer, timer_id)
