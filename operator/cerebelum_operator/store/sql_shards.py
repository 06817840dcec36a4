"""Shards and their owners on SQLAlchemy Core, mixed into `SqlEventStore` (migration 9, scale-out).

Fencing: a replica that owns only some shards sets a fence (shard → the epoch it took it at).
Every append then reads those shards' epochs in its own transaction, holding the rows shared
(``FOR SHARE`` on PostgreSQL; SQLite has one writer at a time anyway), and refuses a write for an
execution whose shard is outside the fence or whose epoch moved on. `take_shard` raises the epoch
with an UPDATE, which waits for those shared holds: once a new owner has the shard, no commit of
the old one can still land.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Collection, Mapping
from contextlib import AbstractContextManager
from types import MappingProxyType

from sqlalchemy import Connection, bindparam, func, select, update

from ..model.shards import DEFAULT_SHARDS, shard_of
from . import schema
from .base import ShardNotOwned, ShardOwnerRow

__all__ = ["SqlShards"]


class SqlShards(abc.ABC):
    """`EventStore`'s shard methods and the fence its appends check."""

    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Connection]: ...

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Connection]: ...

    def _shard_statements(self) -> None:
        o, x = schema.shard_owners, schema.executions
        self._shards = 0  # read once, lazily: fixed for a store
        self._fence: Mapping[int, int] | None = None
        self._fence_lock = threading.Lock()
        self._count_shards = select(func.count()).select_from(o)
        self._select_shard = select(x.c.shard).where(x.c.execution_id == bindparam("b_execution_id"))
        self._select_owners = select(o.c.shard, o.c.epoch, o.c.owner, o.c.address, o.c.taken_at_ms).order_by(o.c.shard)
        self._select_fenced_epochs = (
            select(o.c.shard, o.c.epoch)
            .where(o.c.shard.in_(bindparam("b_shards", expanding=True)))
            .with_for_update(read=True)
        )
        self._take_shard = (
            update(o)
            .where(o.c.shard == bindparam("b_shard"))
            .values(
                epoch=o.c.epoch + 1,
                owner=bindparam("b_owner"),
                address=bindparam("b_address"),
                taken_at_ms=bindparam("b_now_ms"),
            )
            .returning(o.c.epoch)
        )
        self._release_shard = (
            update(o)
            .where(o.c.shard == bindparam("b_shard"), o.c.epoch == bindparam("b_epoch"))
            .values(owner=None, address=None)
            .returning(o.c.shard)
        )

    def shard_count(self) -> int:
        if not self._shards:
            with self._read() as conn:
                self._shards = int(conn.execute(self._count_shards).scalar() or 0) or DEFAULT_SHARDS
        return self._shards

    def placed_shard(self, execution_id: str, shard: int | None) -> int:
        """Where a new execution goes: the shard it was given, else the one its id hashes to."""
        count = self.shard_count()
        if shard is None:
            return shard_of(execution_id, shards=count)
        if not 0 <= shard < count:
            raise ValueError(f"shard {shard} of execution {execution_id!r} is not one of this store's {count}")
        return shard

    def shard_of_execution(self, execution_id: str) -> int | None:
        with self._read() as conn:
            shard = conn.execute(self._select_shard, {"b_execution_id": execution_id}).scalar()
        return None if shard is None else int(shard)

    def list_shard_owners(self) -> list[ShardOwnerRow]:
        with self._read() as conn:
            return [ShardOwnerRow(*row) for row in conn.execute(self._select_owners)]

    def take_shard(self, shard: int, *, owner: str, address: str | None, now_ms: int) -> int:
        with self._write() as conn:
            epoch = conn.execute(
                self._take_shard, {"b_shard": shard, "b_owner": owner, "b_address": address, "b_now_ms": now_ms}
            ).scalar()
        if epoch is None:
            raise ValueError(f"shard {shard} is not one of this store's {self.shard_count()}")
        return int(epoch)

    def release_shard(self, shard: int, *, epoch: int) -> bool:
        with self._write() as conn:
            return conn.execute(self._release_shard, {"b_shard": shard, "b_epoch": epoch}).first() is not None

    def set_fence(self, epochs: Mapping[int, int] | None) -> None:
        with self._fence_lock:  # swapped whole: an append reads one fence or the other, never half
            self._fence = None if epochs is None else MappingProxyType(dict(epochs))

    def _work_of(self, shards: Collection[int] | None) -> Collection[int] | None:
        """The shards a read of work (tasks, timers, outbox, active executions) covers: those asked
        for, else the fence's (a replica's books hold only what it owns), else every shard."""
        if shards is not None:
            return shards
        fence = self._fence
        return None if fence is None else list(fence)

    def _standing_shards(self, conn: Connection) -> Collection[int] | None:
        """The fenced shards whose epochs still stand, read (and held shared) in `conn`'s transaction;
        None without a fence (this process owns every shard)."""
        fence = self._fence
        if fence is None:
            return None
        if not fence:
            return frozenset()
        rows = conn.execute(self._select_fenced_epochs, {"b_shards": list(fence)}).all()
        return frozenset(shard for shard, epoch in rows if fence.get(shard) == epoch)

    @staticmethod
    def _check_owned(standing: Collection[int] | None, execution_id: str, shard: int) -> None:
        if standing is not None and shard not in standing:
            raise ShardNotOwned(
                f"execution {execution_id!r} is in shard {shard}, which this replica does not own (any more):"
                " another replica took it; the write did not land"
            )
