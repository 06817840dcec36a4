"""Opening stores by URL, versioned migrations, and durability across reopening."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, select

from cerebelum_operator.engine import events as ev
from cerebelum_operator.store import EventStore, ExecutionSummary, NewExecution, open_store
from cerebelum_operator.store.migrations import MIGRATIONS, latest_version
from cerebelum_operator.store.postgres import normalise_url
from cerebelum_operator.store.schema import metadata, schema_migrations
from cerebelum_operator.store.sqlite import _enable_wal

from .helpers import Appender


def _engine_for(url: str) -> Engine:
    return create_engine(normalise_url(url) if url.startswith("postgresql") else url)


def _applied_versions(url: str) -> list[int]:
    engine = _engine_for(url)
    try:
        with engine.connect() as conn:
            return list(conn.scalars(select(schema_migrations.c.version).order_by(schema_migrations.c.version)))
    finally:
        engine.dispose()


def test_migrate_creates_the_schema_and_records_its_version(unmigrated_store: EventStore, store_url: str) -> None:
    assert unmigrated_store.migrate() == latest_version() == MIGRATIONS[-1].version
    assert _applied_versions(store_url) == [m.version for m in MIGRATIONS] == list(range(1, latest_version() + 1))


def test_migrate_is_idempotent(unmigrated_store: EventStore, store_url: str) -> None:
    first = unmigrated_store.migrate()
    assert unmigrated_store.migrate() == first
    assert _applied_versions(store_url) == [m.version for m in MIGRATIONS]


def test_the_migrated_schema_matches_the_declared_tables_and_indexes(store: EventStore, store_url: str) -> None:
    engine = _engine_for(store_url)
    try:
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) == set(metadata.tables)
        for table in metadata.sorted_tables:
            assert [c["name"] for c in inspector.get_columns(table.name)] == [c.name for c in table.columns]
            assert {i["name"] for i in inspector.get_indexes(table.name)} == {i.name for i in table.indexes}
    finally:
        engine.dispose()


def test_two_stores_migrating_at_once_apply_each_version_once(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(2)]
    barrier = threading.Barrier(len(stores))
    results: list[int] = []
    errors: list[BaseException] = []

    def migrate(store: EventStore) -> None:
        barrier.wait()
        try:
            results.append(store.migrate())
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == []
    assert results == [latest_version()] * 2
    assert _applied_versions(store_url) == [m.version for m in MIGRATIONS]


def test_data_survives_closing_and_reopening_the_store(store: EventStore, appender: Appender, store_url: str) -> None:
    appender.start("e1", input={"order": 7})
    store.put_workflow("orders", {"steps": []}, now_ms=5)
    store.close()

    reopened = open_store(store_url)
    try:
        assert reopened.migrate() == latest_version()
        assert reopened.get_workflow("orders") is not None
        execution = reopened.get_execution("e1")
        assert execution is not None
        assert execution.input == {"order": 7}
        assert [r.event for r in reopened.load_history("e1")] == [
            ev.ExecutionStarted(workflow="orders", input={"order": 7}, spec_hash="h1")
        ]
    finally:
        reopened.close()


def test_an_in_memory_sqlite_store_works_for_tests() -> None:
    store = open_store("sqlite:///:memory:")
    try:
        assert store.migrate() == latest_version()
        store.append(
            "e1",
            expected_seq=0,
            events=[ev.RecordedEvent(1, 10, ev.ExecutionStarted(workflow="w", input=None, spec_hash="h"))],
            actions=[],
            summary=ExecutionSummary("Running", [], None, None, None, 10),
            new_execution=NewExecution(workflow="w", spec={}, spec_hash="h", input=None),
        )
        assert [r.seq for r in store.load_history("e1")] == [1]
    finally:
        store.close()


def test_open_store_creates_the_sqlite_files_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dirs" / "store.db"
    store = open_store(f"sqlite:///{path}")
    try:
        store.migrate()
    finally:
        store.close()
    assert path.is_file()


@pytest.mark.parametrize(("query", "expected"), [("", 1), ("?synchronous=FULL", 2), ("?synchronous=normal", 1)])
def test_sqlite_runs_in_wal_mode_with_the_requested_synchronous_level(
    tmp_path: Path, query: str, expected: int
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}{query}")
    try:
        with store._write_engine.connect() as conn:  # type: ignore[attr-defined]
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        store.close()
    assert pragma == {"journal_mode": "wal", "synchronous": expected, "foreign_keys": 1, "busy_timeout": 5000}


def test_sqlite_rejects_an_unknown_synchronous_level(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        open_store(f"sqlite:///{tmp_path / 'store.db'}?synchronous=sometimes")


def test_open_store_rejects_an_unsupported_scheme() -> None:
    with pytest.raises(ValueError, match="unsupported store URL"):
        open_store("mysql://localhost/cerebelum")


@pytest.mark.parametrize(
    "url",
    ["postgresql://u:p@db:5432/c", "postgresql+psycopg://u:p@db:5432/c", "postgresql+psycopg2://u:p@db:5432/c"],
)
def test_postgresql_urls_are_normalised_to_psycopg_3(url: str) -> None:
    normalised = normalise_url(url)
    assert normalised.drivername == "postgresql+psycopg"
    assert normalised.render_as_string(hide_password=False) == "postgresql+psycopg://u:p@db:5432/c"


def test_a_store_written_at_version_1_upgrades_to_the_latest_keeping_its_executions(store_url: str) -> None:
    from cerebelum_operator.store.migrations import MIGRATIONS, apply_migrations

    old = open_store(store_url)
    try:
        # What a release with only migration 1 did: its frozen DDL, then an execution written.
        private = old._write, old._lock_migrations  # type: ignore[attr-defined]
        assert apply_migrations(*private, migrations=MIGRATIONS[:1]) == 1
        Appender(old).start("e1", input={"order": 7})
    finally:
        old.close()
    upgraded = open_store(store_url)
    try:
        assert upgraded.migrate() == latest_version()
        assert _applied_versions(store_url) == [m.version for m in MIGRATIONS]
        execution = upgraded.get_execution("e1")
        assert execution is not None and execution.input == {"order": 7}
        assert upgraded.load_history("e1")[0].event == ev.ExecutionStarted(
            workflow="orders", input={"order": 7}, spec_hash="h1"
        )
    finally:
        upgraded.close()


def test_switching_a_new_sqlite_file_to_wal_waits_out_another_connections_lock(tmp_path: Path) -> None:
    """SQLite refuses the switch at once (no busy handler) while another connection writes the
    file: the store retries it instead of failing its start."""
    path = tmp_path / "new.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE t (x)")
    cursor = sqlite3.connect(path, isolation_level=None, timeout=5.0).cursor()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        cursor.execute("PRAGMA journal_mode = WAL")  # what the store used to do: refused at once
    attempts: list[str] = []

    def commit_before_the_second_attempt(sql: str) -> None:  # SQLite traces a statement as it starts it
        attempts.append(sql)
        if len(attempts) == 2:
            holder.execute("COMMIT")

    cursor.connection.set_trace_callback(commit_before_the_second_attempt)
    _enable_wal(cursor)
    assert attempts == ["PRAGMA journal_mode = WAL"] * 2  # refused once, then retried
    assert cursor.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    # A lock held past the bound is still an error, not a hang.
    other = tmp_path / "other.db"
    holder = sqlite3.connect(other, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE t (x)")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _enable_wal(sqlite3.connect(other, isolation_level=None, timeout=0).cursor(), within_s=0)
