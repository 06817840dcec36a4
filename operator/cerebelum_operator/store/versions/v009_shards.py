"""Migration 9, frozen: each execution's shard, and who owns each shard (issue 21, scale-out).

``executions`` gains ``shard`` (NOT NULL, default 0), filled here for every existing row from its
chain's first run id (a continue-as-new run is in ``execution_runs``), with the hash
`model.shards.shard_of` uses, written out below so this migration never changes. Existing children
are placed by their own id: their parents' ids are only in their histories, and a parent and child
in different shards are still correct (their messages go through the outbox like any other), only
not co-located. ``shard_owners`` gets one row per shard (16), epoch 0 and no owner: a replica takes
a shard by raising its epoch, and every commit of a replica that owns only some shards checks the
epochs it holds (`store.sql`), so a stale owner's write fails instead of landing.

A column with a default and a new table: an engine of schema 8 still runs on a store at version 9
(it owns every shard, as before; its new executions get shard 0 until a newer engine places them).
"""

from __future__ import annotations

import hashlib

from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, Table, Text, bindparam, select, text, update

__all__ = ["DESCRIPTION", "SHARDS", "apply"]

DESCRIPTION = "executions.shard (filled from each chain's first run id) and shard_owners (16 shards, epoch 0)"

SHARDS = 16
_CHUNK = 1000


def _shard_of(execution_id: str) -> int:
    digest = hashlib.blake2b(execution_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SHARDS


def apply(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE executions ADD COLUMN shard INTEGER DEFAULT 0 NOT NULL"))
    metadata = MetaData(naming_convention={"pk": "pk_%(table_name)s"})
    executions = Table("executions", metadata, Column("execution_id", Text, primary_key=True), Column("shard", Integer))
    runs = Table(
        "execution_runs",
        metadata,
        Column("first_run_id", Text),
        Column("execution_id", Text),
    )
    owners = Table(
        "shard_owners",
        metadata,
        Column("shard", Integer, primary_key=True, autoincrement=False),
        Column("epoch", BigInteger, nullable=False),
        Column("owner", Text),
        Column("address", Text),
        Column("taken_at_ms", BigInteger),
    )
    metadata.create_all(conn, tables=[owners])
    conn.execute(owners.insert(), [{"shard": shard, "epoch": 0} for shard in range(SHARDS)])
    chain = select(runs.c.first_run_id).where(runs.c.execution_id == executions.c.execution_id).scalar_subquery()
    place = update(executions).where(executions.c.execution_id == bindparam("b_id")).values(shard=bindparam("b_shard"))
    after = ""
    while True:  # in chunks of ids: a large store is never read whole into memory
        rows = conn.execute(
            select(executions.c.execution_id, chain)
            .where(executions.c.execution_id > after)
            .order_by(executions.c.execution_id)
            .limit(_CHUNK)
        ).all()
        if not rows:
            return
        moved = [
            {"b_id": execution_id, "b_shard": shard}
            for execution_id, first_run_id in rows
            if (shard := _shard_of(first_run_id or execution_id)) != 0
        ]
        if moved:
            conn.execute(place, moved)
        after = rows[-1][0]
