"""Migration 3, frozen: the schedules table (issue 17, schedules).

One new table and nothing changed in the others, so an older engine started on a store at
version 3 runs as before (it fires no schedules: they wait, settled later per their catch-up
window, until a new engine comes back).
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Connection, Index, Integer, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

__all__ = ["DESCRIPTION", "apply"]

DESCRIPTION = "schedules (spec, state and next fire time of each schedule)"

_JSON = JSON().with_variant(JSONB(), "postgresql")


def apply(conn: Connection) -> None:
    metadata = MetaData(naming_convention={"ix": "ix_%(table_name)s_%(column_0_N_name)s", "pk": "pk_%(table_name)s"})
    Table(
        "schedules",
        metadata,
        Column("key", Text, primary_key=True),
        Column("spec", _JSON, nullable=False),
        Column("state", _JSON, nullable=False),
        Column("next_fire_at_ms", BigInteger),
        Column("revision", Integer, nullable=False),
        Column("created_at_ms", BigInteger, nullable=False),
        Column("updated_at_ms", BigInteger, nullable=False),
        Index(None, "next_fire_at_ms"),
    )
    metadata.create_all(conn, tables=[metadata.tables["schedules"]])
