"""This engine's share of the shards, kept through a PostgreSQL session (`cerebelum dev --shards auto`).

Each round: read who is alive and who holds which shard (`store.pg_shard_locks.ShardSession`), ask
`runtime.shards.assign` for the whole map and `plan` for this engine's moves, then hand over what
it must give up (drained by `ShardHost`, then its lock released) and take what is free (its lock
first, then `ShardHost.take`, which raises the epoch). A member that dies releases its session and
its locks with it, so its shards are taken in the others' next round. Losing the session (the
database restarted) drops every shard at once and joins again.

The decisions are `runtime.shards`' (pure, property-tested); this is the thin glue, on the
injected clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..store import StoreUnavailable
from .clock import Clock
from .database import Database
from .ownership import ShardHost
from .shards import assign, plan

if TYPE_CHECKING:  # psycopg is loaded only by a process that opens a PostgreSQL store
    from ..store.pg_shard_locks import ShardSession

__all__ = ["ShardBalancer"]

log = logging.getLogger(__name__)


class ShardBalancer:
    def __init__(
        self, db: Database, host: ShardHost, session: ShardSession, *, clock: Clock, every_s: float = 1.0
    ) -> None:
        self.db = db
        self.host = host
        self.session = session
        self.clock = clock
        self.every_s = every_s
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None
        self._locked: set[int] = set()  # the shard locks this session holds (a lock taken twice stacks)
        self._after_round: list[Callable[[], Awaitable[None]]] = []

    def after_round(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run after every round (what runs on one engine only follows shard 0, say)."""
        self._after_round.append(hook)

    async def start(self) -> None:
        """Join and take a first share before returning (or none, if the others hold everything)."""
        await self.db.run(self.session.join)
        await self.round()
        self._task = asyncio.create_task(self._loop(), name="shard-balancer")

    async def stop(self) -> None:
        """Hand every shard over (drained, released) and leave."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.host.hand_over(list(self.host.owned))
        finally:
            await self.db.run(self.session.close)

    async def round(self) -> None:
        """One look at the members and holders, and the moves it calls for."""
        self.rounds += 1
        try:
            if not self.session.open:
                self._locked.clear()
                await self.db.run(self.session.join)
            members = await self.db.run(self.session.members)
            holders = await self.db.run(self.session.holders)
            owners = assign(shards=self.db.store.shard_count(), members=members, holders=holders)
            held = self.host.owned.keys() | self._locked
            moves = plan(me=self.session.member, owners=owners, held=held)
            for shard in sorted(moves.hand_over):
                await self.host.hand_over([shard])
                if shard in self._locked:
                    await self.db.run(self.session.unlock, shard)
                    self._locked.discard(shard)
            taken: list[int] = []
            for shard in sorted(moves.take | (moves.keep - self.host.owned.keys())):
                if shard not in self._locked:
                    if not await self.db.run(self.session.try_lock, shard):
                        continue  # its holder has not let go yet: a later round
                    self._locked.add(shard)
                taken.append(shard)
            if taken:
                await self.host.take(taken)
        except StoreUnavailable as error:
            log.warning("shard ownership unavailable (%s): dropping every shard, joining again", error)
            self.host.drop_all()
            self._locked.clear()
            await self.db.run(self.session.close)
        for hook in self._after_round:
            await hook()

    async def _loop(self) -> None:
        while True:
            await self.clock.sleep(self.every_s)
            try:
                await self.round()
            except Exception:  # never let one bad round end the balancing; the fence keeps writes safe
                log.exception("a shard balancing round failed; trying again")
