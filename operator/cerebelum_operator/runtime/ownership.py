"""The shards this engine process owns, taken and handed over while it runs (scale-out glue).

`runtime.shards` says who *should* own what; a transport (the operator's shard Leases) decides when
a replica may act; this class does what taking or handing over a shard means for one engine:

- **Take**: raise the shard's epoch in the store, which waits out any commit of the previous owner
  still in flight and fences off every later one; add the shard to the store's fence, so this
  process's appends may touch it and its reads of work cover it; then load its work: its queued
  and leased tasks into the dispatcher, its due timers, its outbox. Cached executions are dropped:
  another owner may have moved them on meanwhile (a stale cache would only cost a conflict and a
  reload, but there is no reason to pay it).
- **Hand over**: take the shard out of the fence first, so a write for it that was still on its way
  fails (`ShardNotOwned`) rather than lands after the next owner took over; drop its tasks from the
  dispatcher (a worker's report for a task it held goes to the next owner, or the lease times out
  there: at-least-once, as across any restart); then release the shard at its epoch, so the next
  owner can take it without waiting for anything to expire.

A process that owns every shard (`cerebelum dev`, a single operator replica) never builds one:
its store has no fence and checks nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from types import MappingProxyType

from ..model.shards import shard_of
from ..store import StoreUnavailable
from .clock import Clock
from .database import Database
from .dispatcher import Dispatcher
from .engine_service import EngineService
from .relay import Relay
from .timers import TimerService

__all__ = ["ShardHost"]

log = logging.getLogger(__name__)


class ShardHost:
    """Takes and hands over shards for one engine process; starts owning none (an empty fence)."""

    def __init__(
        self,
        db: Database,
        engine: EngineService,
        dispatcher: Dispatcher,
        timers: TimerService,
        relay: Relay,
        *,
        clock: Clock,
        owner: str,
        address: str | None,
    ) -> None:
        self.db = db
        self.engine = engine
        self.dispatcher = dispatcher
        self.timers = timers
        self.relay = relay
        self.clock = clock
        self.owner = owner
        self.address = address
        self._epochs: dict[int, int] = {}
        self._count = db.store.shard_count()
        db.store.set_fence({})
        engine.set_placement(self.place)
        engine.set_ownership(self._epochs.__contains__)

    @property
    def owned(self) -> Mapping[int, int]:
        """The shards owned now, with the epoch each was taken at."""
        return MappingProxyType(self._epochs)

    def place(self, execution_id: str) -> int:
        """A new root execution's shard: its id's if owned here, else one owned here chosen by its id
        (calls naming an id are routed to its id's owner first; this places what the engine itself
        starts, a schedule's fire say, without a hop). Where it went is recorded in its row."""
        shard = shard_of(execution_id, shards=self._count)
        owned = sorted(self._epochs)
        if shard in self._epochs or not owned:
            return shard
        return owned[shard % len(owned)]

    async def take(self, shards: Collection[int]) -> None:
        """Own these shards from now on (those owned already are left as they are)."""
        new = sorted(set(shards) - self._epochs.keys())
        if not new:
            return
        for shard in new:
            epoch = await self.db.run(
                self.db.store.take_shard, shard, owner=self.owner, address=self.address, now_ms=self.clock.now_ms()
            )
            self._epochs[shard] = epoch
        self.db.store.set_fence(self._epochs)
        self.engine.forget_cached()
        rows = await self.db.run(self.db.store.load_tasks, shards=new)
        self.dispatcher.adopt(rows)
        await self.timers.rescan()
        await self.relay.start()
        log.info("took shards %s (%d tasks)", new, len(rows))

    async def hand_over(self, shards: Collection[int]) -> None:
        """Stop owning these shards and release them for the next owner."""
        leaving = {shard: self._epochs.pop(shard) for shard in sorted(set(shards) & self._epochs.keys())}
        if not leaving:
            return
        self.db.store.set_fence(self._epochs)
        rows = await self.db.run(self.db.store.load_tasks, shards=list(leaving))
        self.dispatcher.disown(row.token for row in rows)
        self.engine.forget_cached()
        for shard, epoch in leaving.items():
            try:
                released = await self.db.run(self.db.store.release_shard, shard, epoch=epoch)
            except StoreUnavailable:
                released = True  # the next owner raises the epoch anyway: a release only spares it a wait
            if not released:
                log.warning("shard %d was taken by another replica before this one released it", shard)
        log.info("handed over shards %s (%d tasks)", sorted(leaving), len(rows))

    def drop_all(self) -> None:
        """Stop owning every shard at once, reading nothing (the ownership itself was lost: the
        database or this engine's session went away). The next owners raise the epochs."""
        if not self._epochs:
            return
        lost = sorted(self._epochs)
        self._epochs.clear()
        self.db.store.set_fence(self._epochs)
        self.dispatcher.disown(self.dispatcher.book.tokens())
        self.engine.forget_cached()
        log.warning("lost shards %s: their work stops here until this engine owns them again", lost)

    async def drop(self, shards: Collection[int]) -> None:
        """Stop owning these shards at once, releasing nothing (their ownership was lost: a Lease
        this replica could not renew in time). The fence narrows first; their tasks then leave the
        dispatcher. The next owner raises the epochs, which fences off any write of ours still on
        its way, so a task left behind when the store cannot be read is refused, never run twice."""
        lost = sorted(set(shards) & self._epochs.keys())
        if not lost:
            return
        for shard in lost:
            del self._epochs[shard]
        self.db.store.set_fence(self._epochs)
        self.engine.forget_cached()
        log.warning("lost shards %s: their work stops here until this engine owns them again", lost)
        try:
            rows = await self.db.run(self.db.store.load_tasks, shards=lost)
        except StoreUnavailable:
            return
        self.dispatcher.disown(row.token for row in rows)
