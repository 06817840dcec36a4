"""Task queues' settings: pause, resume and rate limits, written to the store, applied by the dispatcher.

The door for the API and the CLI (`EngineService` is the door to executions; this is the one to
queue settings): every write goes to the store first, then to the dispatcher, so a setting an
admin was told is in force survives a restart. Settings are engine-wide: a task queue is a name
shared by every namespace (the access policy narrows what a worker takes from it, not the queue).
Engines that split the shards share the store: each applies what another wrote when told so
(`refresh`: the receiving engine tells the others, and each reads them every few seconds anyway).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from ..engine.rates import RateLimit
from ..store import TaskQueueRow
from .clock import Clock
from .database import Database
from .dispatcher import Dispatcher
from .queue_gate import Block, QueueControl
from .task_lifecycle import QueueStats

__all__ = ["TaskQueueService", "TaskQueueView"]


@dataclass(frozen=True, slots=True)
class TaskQueueView:
    """A queue as `cerebelum queue list` shows it: its setting and what waits in it now."""

    name: str
    paused: bool
    note: str
    rate_limit: RateLimit | None
    updated_at_ms: int | None  # None: never set (default: running, no limit)
    ready: int
    scheduled: int
    running: int
    pollers: int
    last_poll_ms: int | None
    block: Block | None


class TaskQueueService:
    def __init__(self, db: Database, dispatcher: Dispatcher, *, clock: Clock) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.clock = clock
        # A change and a refresh one at a time: a refresh that read the store just before a change was
        # written would otherwise put the old setting back over it.
        self._changing = asyncio.Lock()

    async def list(self) -> list[TaskQueueView]:
        """Every queue with a setting, tasks or recent polls, by name."""
        rows = {row.name: row for row in await self.db.run(self.db.store.list_task_queues)}
        stats = self.dispatcher.queue_stats()
        return [self._view(name, rows.get(name), stats.get(name)) for name in sorted(set(rows) | set(stats))]

    async def get(self, name: str) -> TaskQueueView:
        rows = {row.name: row for row in await self.db.run(self.db.store.list_task_queues)}
        return self._view(name, rows.get(name), self.dispatcher.queue_stats().get(name))

    async def pause(self, name: str, *, note: str = "") -> TaskQueueView:
        """Nothing new of the queue is handed out; running tasks finish and their outcomes count."""
        return await self._update(name, lambda c: dataclasses.replace(c, paused=True, note=note))

    async def resume(self, name: str) -> TaskQueueView:
        """Hand out again, oldest-waiting polls first, from where it stopped."""
        return await self._update(name, lambda c: dataclasses.replace(c, paused=False, note=""))

    async def set_rate_limit(self, name: str, rate_limit: RateLimit | None) -> TaskQueueView:
        """At most ``rate_limit`` tasks of the queue start per period (None: no limit), from now on."""
        return await self._update(name, lambda c: dataclasses.replace(c, rate_limit=rate_limit))

    async def refresh(self) -> tuple[str, ...]:
        """Apply the settings the store holds now (another engine may have written them); the queues
        whose setting changed here."""
        changed = []
        async with self._changing:
            for row in await self.db.run(self.db.store.list_task_queues):
                control = QueueControl(paused=row.paused, note=row.note, rate_limit=row.rate_limit)
                if control != self.dispatcher.book.gate.control(row.name):
                    self.dispatcher.set_control(row.name, control)
                    changed.append(row.name)
        return tuple(changed)

    async def _update(self, name: str, change: Callable[[QueueControl], QueueControl]) -> TaskQueueView:
        if not name:
            raise ValueError("a task queue needs a name")
        async with self._changing:
            control = change(self.dispatcher.book.gate.control(name))
            await self.db.run(
                self.db.store.put_task_queue,
                name,
                paused=control.paused,
                note=control.note,
                rate_limit=control.rate_limit,
                now_ms=self.clock.now_ms(),
            )
            self.dispatcher.set_control(name, control)
        return await self.get(name)

    def _view(self, name: str, row: TaskQueueRow | None, stats: QueueStats | None) -> TaskQueueView:
        control = self.dispatcher.book.gate.control(name)
        return TaskQueueView(
            name=name,
            paused=control.paused,
            note=control.note,
            rate_limit=control.rate_limit,
            updated_at_ms=None if row is None else row.updated_at_ms,
            ready=stats.ready if stats else 0,
            scheduled=stats.scheduled if stats else 0,
            running=stats.running if stats else 0,
            pollers=stats.pollers if stats else 0,
            last_poll_ms=stats.last_poll_ms if stats else None,
            block=stats.block if stats else self.dispatcher.book.gate.queue_block(name, self.clock.now_ms()),
        )
