"""Migration 4, frozen: the store_compatibility table (issue 19, upgrades that never strand an execution).

What an engine must know to run on this store, written by the engines that know more:
``schema_readable_by`` is the oldest schema version whose engine may still run on it (a migration
that only adds tables leaves it; one that changes what older engines read raises it), and
``events`` is the newest event format written to the histories. An engine refuses, before it
serves anything, a store that needs more than it knows (`migrations.check_compatible`): a rollback
is either safe or refused at start. One new table: an older engine started on a store at version
4 runs as before.
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, Integer, MetaData, Table, Text, insert

__all__ = ["DESCRIPTION", "apply"]

DESCRIPTION = "store_compatibility (the schema an engine must read and the newest event format written)"


def apply(conn: Connection) -> None:
    metadata = MetaData(naming_convention={"pk": "pk_%(table_name)s"})
    table = Table(
        "store_compatibility",
        metadata,
        Column("name", Text, primary_key=True),
        Column("version", Integer, nullable=False),
    )
    metadata.create_all(conn, tables=[table])
    # Engines of schema 3 run on this store; the histories hold events of format 1 or 2 (2: code
    # workflows' continuations, written only by engines that know this table).
    conn.execute(insert(table), [{"name": "schema_readable_by", "version": 3}, {"name": "events", "version": 1}])
