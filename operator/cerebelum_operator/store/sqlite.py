"""`SqliteEventStore`: the embedded default, one file in WAL mode.

pysqlite's own transaction handling is switched off (SQLAlchemy's documented recipe)
so that writes can start with BEGIN IMMEDIATE: the write lock is taken up front, and
two writers queue on `busy_timeout` instead of failing with "database is locked"
when a read transaction tries to upgrade. Reads run each statement on its own, which
in WAL mode never blocks and is never blocked by a writer.

Two engines on one file would each time out the other's leases, so the engine claims the file
with an `flock` on a sidecar `<file>.lock` for its lifetime (`claim_exclusively`); the kernel
drops it when the process dies, however it dies. A damaged file is refused by `migrate`, before
anything is served from it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, create_engine, event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.sql.dml import Insert

from . import schema
from .base import StoreCorrupted, StoreLocked
from .held import DriverTransactions
from .multirow import MultiRow
from .prepared import driver_error
from .sql import SqlEventStore, dumps_json, is_corruption

__all__ = ["DEFAULT_INTEGRITY_CHECK_S", "SqliteEventStore"]

log = logging.getLogger(__name__)

DEFAULT_INTEGRITY_CHECK_S = 5.0
_HEADER = b"SQLite format 3\x00"

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_WRITE_OPTION = "cerebelum_write"
_UPDATE_FROM_SINCE = (3, 33, 0)  # the SQLite that takes UPDATE ... FROM (store/multirow.py)


class SqliteEventStore(SqlEventStore):
    """SQLite through the standard library driver; `synchronous=NORMAL` unless the URL asks otherwise."""

    def __init__(self, url: str | URL, *, integrity_check_s: float = DEFAULT_INTEGRITY_CHECK_S) -> None:
        url = make_url(url)
        self.integrity_check_s = integrity_check_s
        self._lock_fd: int | None = None
        synchronous = str(url.query.get("synchronous", "NORMAL")).upper()
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, not {synchronous!r}")
        url = url.difference_update_query(["synchronous"])
        database = url.database or ""
        in_memory = database in ("", ":memory:")
        self.path = None if in_memory else Path(database).absolute()
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
                    _enable_wal(cursor)
                cursor.execute(f"PRAGMA synchronous = {synchronous}")
                cursor.execute("PRAGMA foreign_keys = ON")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if conn.get_execution_options().get(_WRITE_OPTION):
                _begin_immediate(conn)

        super().__init__(
            engine,
            label=str(self.path or ":memory:"),
            write_options={_WRITE_OPTION: True},
            transactions=_ImmediateTransactions(),
        )
        if sqlite3.sqlite_version_info >= _UPDATE_FROM_SINCE:  # older builds: a statement a row, as before
            multirow = self._multirow = MultiRow(
                executions=schema.executions, dialect=engine.dialect, max_params=_max_params()
            )
            multirow.add_insert(self._insert_task, schema.tasks)
            multirow.add_delete(self._delete_task, schema.tasks, column="token", param="b_token")
            multirow.add_delete(self._delete_timer, schema.timers, column="timer_id", param="b_timer_id")

    def claim_exclusively(self) -> None:
        if self.path is None or self._lock_fd is not None:
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLocked(
                f"the SQLite store {self.path} is in use by another engine (pid {holder}, lock {lock_path}):"
                " stop it first, or give this one another --db"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Not needed for the lock (flock is), only to name the holder to whoever is refused.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def close(self) -> None:
        super().close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock; the file stays, unlinking it would race
            self._lock_fd = None

    def migrate(self) -> int:
        self.verify()
        return super().migrate()

    def verify(self) -> None:
        """Refuse (`StoreCorrupted`) a file that is not a SQLite database or whose pages are damaged.

        The header is always read; `PRAGMA quick_check` (every page, not the indexes' contents)
        runs for at most `integrity_check_s` seconds, so a huge store still starts promptly,
        checked as far as the budget went.
        """
        if self.path is None or not self.path.exists():
            return
        with self.path.open("rb") as file:
            header = file.read(len(_HEADER))
        if header and header != _HEADER:
            raise StoreCorrupted(
                f"{self.path} is not a SQLite database (its first bytes are {header[:16]!r}, not the SQLite"
                " header): give --db a new file, or restore this one from a backup"
            )
        problems = self._quick_check(self.path)
        if problems:
            shown = "; ".join(problems[:5])
            raise StoreCorrupted(
                f"the SQLite store {self.path} is corrupt ({shown}): restore it from a backup, or try"
                f" `sqlite3 {self.path} .recover`; the engine will not start on it"
            )

    def _quick_check(self, path: Path) -> list[str]:
        deadline = time.monotonic() + self.integrity_check_s
        connection = sqlite3.connect(path, timeout=5.0)
        try:
            # Called every 10,000 virtual-machine instructions; a true result interrupts the check.
            connection.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
            try:
                rows = connection.execute("PRAGMA quick_check(20)").fetchall()
            except sqlite3.OperationalError as error:
                if time.monotonic() <= deadline:
                    raise
                log.warning(
                    "%s: integrity check stopped after %.0f s (%s); the rest is checked when read",
                    path,
                    self.integrity_check_s,
                    error,
                )
                return []
            except sqlite3.DatabaseError as error:
                if is_corruption(error):
                    return [str(error)]
                raise
        finally:
            with contextlib.suppress(sqlite3.Error):
                connection.close()
        results = [line for (row,) in rows for line in str(row).splitlines()]
        return [] if results == ["ok"] else [r for r in results if r.strip()]

    def _insert_or_ignore(self, table: Table) -> Insert:
        return sqlite_insert(table).on_conflict_do_nothing()

    def _insert_or_replace(self, table: Table, key: str) -> Insert:
        stmt = sqlite_insert(table)
        others = {c.name: stmt.excluded[c.name] for c in table.columns if c.name != key}
        return stmt.on_conflict_do_update(index_elements=[key], set_=others)

    def _lock_migrations(self, conn: Connection) -> None:
        """Nothing to do: the transaction began IMMEDIATE and so already holds the write lock."""


def _enable_wal(cursor: sqlite3.Cursor, *, within_s: float = 5.0) -> None:
    """Switch the file to WAL, retrying "database is locked" for as long as `busy_timeout` would wait.

    Switching needs the file to itself, and SQLite answers that request with SQLITE_BUSY at once,
    without calling the busy handler, when another connection holds a lock (two engines or tools
    opening a new file together): one of two stores migrating a new file at once failed that way.
    Once the file is in WAL the switch is a no-op that takes no lock.
    """
    deadline = time.monotonic() + within_s
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(pause)  # a store thread opening a connection, never the event loop
        pause = min(pause * 2, 0.1)


class _ImmediateTransactions(DriverTransactions):
    """The held write connection's transactions begin IMMEDIATE too."""

    def begin(self, conn: Connection) -> None:
        _begin_immediate(conn)


def _begin_immediate(conn: Connection) -> None:
    """BEGIN IMMEDIATE on the driver: through `exec_driver_sql` (an execution context and a result for
    one fixed statement) it cost more CPU than the append's own statements; its errors are raised as
    SQLAlchemy would raise them (a busy database past `busy_timeout` is still `StoreUnavailable`)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        driver.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:
        raise driver_error(conn, "BEGIN IMMEDIATE", (), error, driver, None) from error


def _max_params() -> int:
    """The most parameters a statement may have in this SQLite build (999 before 3.32, 32,766 since)."""
    probe = sqlite3.connect(":memory:")
    try:
        return int(probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    finally:
        probe.close()
