"""`PostgresEventStore`: PostgreSQL through psycopg 3, for clustered deployments."""

from __future__ import annotations

from sqlalchemy import Connection, Table, create_engine, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.sql.dml import Insert

from .sql import SqlEventStore, dumps_json

__all__ = ["PostgresEventStore", "normalise_url"]

# Any fixed 64-bit key, shared by every process migrating the same database.
_MIGRATION_LOCK_KEY = 0x6365726562656C75  # "cerebelu"


def normalise_url(url: str | URL) -> URL:
    """Use psycopg 3 whatever driver the URL names (plain `postgresql://` means psycopg2 to SQLAlchemy)."""
    url = make_url(url)
    return url.set(drivername="postgresql+psycopg")


class PostgresEventStore(SqlEventStore):
    """Writes run at READ COMMITTED: the guarded UPDATE of `last_seq` is what serialises appenders."""

    def __init__(self, url: str | URL, *, pool_size: int = 5) -> None:
        engine = create_engine(
            normalise_url(url),
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,  # an extra round trip per transaction; SQLAlchemy drops dead pools itself
            json_serializer=dumps_json,
        )
        # Single-statement reads need no transaction: skip BEGIN/ROLLBACK round trips.
        super().__init__(engine, read_options={"isolation_level": "AUTOCOMMIT"})

    def _insert_or_ignore(self, table: Table) -> Insert:
        return pg_insert(table).on_conflict_do_nothing()

    def _insert_or_replace(self, table: Table, key: str) -> Insert:
        stmt = pg_insert(table)
        others = {c.name: stmt.excluded[c.name] for c in table.columns if c.name != key}
        return stmt.on_conflict_do_update(index_elements=[key], set_=others)

    def _lock_migrations(self, conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
