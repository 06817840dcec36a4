"""A database that goes away: the store says StoreUnavailable (not a driver error), and recovers by itself.

Found by the chaos suite: during a PostgreSQL restart SQLAlchemy's OperationalError reached the
gRPC layer as INTERNAL, which the SDK takes as final, so workers dropped finished steps' results.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cerebelum_operator.store import StoreUnavailable, open_store
from tests.support.postgres import PostgresServer

from .helpers import Appender


@pytest.mark.postgres
def test_reads_and_writes_during_a_postgresql_restart_raise_store_unavailable_and_work_again_after_it(
    private_postgres: PostgresServer,
) -> None:
    store = open_store(private_postgres.create_database())
    try:
        store.migrate()
        appender = Appender(store)
        appender.start("before")

        private_postgres.restart(mode="immediate", down_s=0)  # every pooled connection is now dead
        with pytest.raises(StoreUnavailable):
            store.get_execution("before")
        assert store.get_execution("before") is not None, "the next call opens a fresh connection"

        private_postgres.restart(mode="immediate", down_s=0)
        with pytest.raises(StoreUnavailable):
            appender.start("during")
        appender.start("after")
        assert store.get_execution("after") is not None
    finally:
        store.close()


def test_a_sqlite_database_locked_past_its_busy_timeout_raises_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("PRAGMA busy_timeout = 0")
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock for longer than busy_timeout
        with pytest.raises(StoreUnavailable, match="locked"):
            Appender(store).start("blocked")
    finally:
        other.execute("ROLLBACK")
        other.close()
        store.close()
