"""Shard ownership through PostgreSQL session locks: who is alive, and who holds which shard.

For engines that share a PostgreSQL store without Kubernetes (`cerebelum dev --shards auto`). Each
engine keeps one connection of its own open (a `ShardSession`):

- **Membership** is that connection itself: its ``application_name`` names the engine, so the live
  members are the sessions `pg_stat_activity` lists under that prefix, in this database. A killed
  engine's connection goes with it, and so does its membership, at once: no expiry to wait out and
  no clock to trust.
- **A shard's holder** is the session holding its advisory lock (`pg_try_advisory_lock` with this
  module's class key and the shard's number), released with the session too.

Both are PostgreSQL's own mechanisms, not a consensus of ours; the epochs in ``shard_owners``
(`SqlShards.take_shard`) still fence every write, so two engines that disagree for a moment (a
session the server has not noticed dead yet, say) cannot both commit to one shard. A connection
pooler that multiplexes sessions (PgBouncer's transaction mode) breaks session locks: connect the
engines to PostgreSQL directly.
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg
from psycopg import sql

from ..model.shards import check_replica
from .base import StoreUnavailable

__all__ = ["APPLICATION_PREFIX", "LOCK_CLASS", "ShardSession"]

APPLICATION_PREFIX = "cerebelum-replica:"
LOCK_CLASS = 0x63657265  # "cere": the first key of every shard lock, the shard the second


class ShardSession:
    """One engine's own connection: its membership, and the shard locks it holds. Not thread-safe:
    call it from one thread (the engine's database thread)."""

    def __init__(self, conninfo: str, *, member: str) -> None:
        check_replica(member)
        self.conninfo = conninfo
        self.member = member
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def join(self) -> None:
        """Open the session (again, after a loss): a member from now on, holding no shard."""
        self.close()
        try:
            self._conn = psycopg.connect(
                self.conninfo, autocommit=True, application_name=APPLICATION_PREFIX + self.member
            )
        except psycopg.OperationalError as error:
            raise StoreUnavailable(f"cannot open the shard session: {error}") from error

    @property
    def open(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def close(self) -> None:
        """Leave: every lock this session held is released with it."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def members(self) -> list[str]:
        """The engines whose sessions are open in this database now."""
        rows = self._query(
            "SELECT application_name FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE %s",
            (APPLICATION_PREFIX + "%",),
        )
        return sorted({str(name).removeprefix(APPLICATION_PREFIX) for (name,) in rows})

    def holders(self) -> Mapping[int, str]:
        """Each locked shard, and the engine whose session holds its lock."""
        rows = self._query(
            "SELECT l.objid::int, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objsubid = 2"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (LOCK_CLASS,),
        )
        return {int(shard): str(name).removeprefix(APPLICATION_PREFIX) for shard, name in rows}  # type: ignore[call-overload]

    def try_lock(self, shard: int) -> bool:
        """Hold the shard's lock if it is free (or already this session's)."""
        rows = self._query("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, shard))
        return bool(rows[0][0])

    def unlock(self, shard: int) -> None:
        self._query("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, shard))

    def _query(self, query: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            raise StoreUnavailable("the shard session is closed: join again")
        try:
            return self._conn.execute(sql.SQL(query), params).fetchall()
        except psycopg.OperationalError as error:  # the server went away: the session and its locks with it
            self.close()
            raise StoreUnavailable(f"the shard session was lost: {error}") from error
