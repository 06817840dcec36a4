"""One operator replica among several active at once: its shards, kept through Leases.

The glue of three parts: `ShardKeeper` (which shards this replica holds, by Lease), the engine's
`ShardHost` (the engine's work of a shard: its epoch, tasks, timers, outbox) and `ShardObjects` (the
Kubernetes objects of a shard). A shard is taken in that order and handed over in the reverse: the
objects' status stops being written here, the engine hands the shard over (released at its epoch
in the store), then its Lease is released. A shard whose Lease could not be renewed in time is
dropped at once (`ShardHost.drop`); the store's epochs fence off anything of ours still on its way.

Safety does not rest on the Leases: two replicas that both believe they hold a shard (a paused
process, a clock jump) cannot both write it, since taking a shard raises its epoch in the store
and every append checks it. The Leases decide who *should* work on a shard, and move shards when
a replica joins, leaves or dies; PostgreSQL's row locks keep the history single-writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from ..runtime import Clock
from ..server import EngineServer
from .bookkeeping import ExecutionsInMemory
from .client import KubeApi
from .reconciler import Reconciler
from .shard_leases import ShardKeeper
from .shard_replica import ShardObjects
from .shard_watch import ShardWatch, is_ours

if TYPE_CHECKING:
    from .operator import OperatorConfig

__all__ = ["SHARED_KINDS", "SharedShards"]

log = logging.getLogger(__name__)

JSON = Any
# Kinds whose kopf bookkeeping stays in memory when replicas hand objects between them.
SHARED_KINDS = ("Execution", "Approval", "Signal", "Schedule")


class SharedShards:
    def __init__(
        self,
        server: EngineServer,
        reconciler: Reconciler,
        api: KubeApi,
        diffbase: ExecutionsInMemory,
        *,
        clock: Clock,
        config: OperatorConfig,
        page: int,
    ) -> None:
        assert config.shard_group is not None
        self.server = server
        self.host = server.shard_host
        count = server.engine.shard_count()
        self.watch = ShardWatch(shards=count, owned=lambda: self.host.owned.keys())
        self.objects = ShardObjects(
            reconciler, api, self.watch, diffbase, clock=clock, namespaces=config.namespaces, page=page
        )
        self.keeper = ShardKeeper(
            api.client,
            namespace=config.lease_namespace,
            group=config.shard_group,
            identity=config.identity,
            shards=count,
            on_take=self._take,
            on_hand_over=self._hand_over,
            on_lost=self._lost,
            lease_duration_s=config.lease_duration_s,
            renew_every_s=max(1.0, config.lease_duration_s / 3),
            clock=clock,
            after_round=self._after_round,
        )
        self._taken: set[int] = set()  # taken in this round, adopted after it
        self._first_round = asyncio.Event()
        self._running: asyncio.Task[None] | None = None
        self._until: asyncio.Event | None = None
        self._lost_tasks: set[asyncio.Task[None]] = set()

    def admit(self, resource: Any, raw_event: dict[str, JSON]) -> bool:
        """The watch filter: another replica's objects never reach kopf here."""
        return not is_ours(resource) or self.watch.admits(resource.plural, raw_event)

    async def start(self, *, until: asyncio.Event) -> bool:
        """Keep the shards from now on; returns once the first round (and its adoption) is done:
        True, or False when `until` was set first."""
        self._running = asyncio.create_task(self.keeper.run(), name="shard-leases")
        self._until = until
        waiting = asyncio.create_task(self._first_round.wait())
        stopping = asyncio.create_task(until.wait())
        await asyncio.wait({self._running, waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiting, stopping):
            task.cancel()
        if self._running.done():
            self._running.result()  # the keeper ended: say why
        return self._first_round.is_set()

    async def leave(self) -> None:
        """A clean shutdown: hand every shard over now, so the others take them without waiting."""
        if self._running is not None:
            self._running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._running
        for task in list(self._lost_tasks):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        await self.objects.stop()
        await self.keeper.leave()
        await self.server.shards_changed()

    async def _take(self, shard: int) -> None:
        if self._until is not None and self._until.is_set():
            return  # stopping: its Lease is released with the others' on leaving, the engine never takes it
        await self.host.take([shard])
        self._taken.add(shard)

    async def _hand_over(self, shard: int) -> None:
        self.objects.hand_over([shard])
        await self.host.hand_over([shard])

    def _lost(self, shard: int) -> None:
        self.objects.hand_over([shard])
        task = asyncio.create_task(self.host.drop([shard]), name=f"shard-{shard}-lost")
        self._lost_tasks.add(task)
        task.add_done_callback(self._lost_tasks.discard)

    async def _after_round(self) -> None:
        await self.server.shards_changed()
        taken, self._taken = self._taken, set()
        if taken:
            try:
                await self.objects.adopt(taken)
            except Exception:
                log.exception("adopting the objects of shards %s failed; again after the next round", sorted(taken))
                self._taken |= taken & self.host.owned.keys()
                return
        if self.keeper.last_round_ok:
            self._first_round.set()  # not before: readiness would mean caught up with no shard at all
