"""`SqliteEventStore`: the embedded default, one file in WAL mode.

pysqlite's own transaction handling is switched off (SQLAlchemy's documented recipe)
so that writes can start with BEGIN IMMEDIATE: the write lock is taken up front, and
two writers queue on `busy_timeout` instead of failing with "database is locked"
when a read transaction tries to upgrade. Reads run each statement on its own, which
in WAL mode never blocks and is never blocked by a writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, create_engine, event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.sql.dml import Insert

from .sql import SqlEventStore, dumps_json

__all__ = ["SqliteEventStore"]

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_WRITE_OPTION = "cerebelum_write"


class SqliteEventStore(SqlEventStore):
    """SQLite through the standard library driver; `synchronous=NORMAL` unless the URL asks otherwise."""

    def __init__(self, url: str | URL) -> None:
        url = make_url(url)
        synchronous = str(url.query.get("synchronous", "NORMAL")).upper()
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, not {synchronous!r}")
        url = url.difference_update_query(["synchronous"])
        database = url.database or ""
        in_memory = database in ("", ":memory:")
        if in_memory:
            # Every connection to :memory: is a new database: share one, used by one thread at a time.
            engine = create_engine(
                url,
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
                json_serializer=dumps_json,
            )
        else:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, pool_size=5, json_serializer=dumps_json)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA busy_timeout = 5000")  # first: switching to WAL may wait
                if not in_memory:
                    cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute(f"PRAGMA synchronous = {synchronous}")
                cursor.execute("PRAGMA foreign_keys = ON")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if conn.get_execution_options().get(_WRITE_OPTION):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        super().__init__(engine, write_options={_WRITE_OPTION: True})

    def _insert_or_ignore(self, table: Table) -> Insert:
        return sqlite_insert(table).on_conflict_do_nothing()

    def _insert_or_replace(self, table: Table, key: str) -> Insert:
        stmt = sqlite_insert(table)
        others = {c.name: stmt.excluded[c.name] for c in table.columns if c.name != key}
        return stmt.on_conflict_do_update(index_elements=[key], set_=others)

    def _lock_migrations(self, conn: Connection) -> None:
        """Nothing to do: the transaction began IMMEDIATE and so already holds the write lock."""
