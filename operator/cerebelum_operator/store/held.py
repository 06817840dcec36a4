"""The store's write connection, held across transactions, begun and ended on its driver.

`Engine.begin()` per transaction checks a connection out of the pool, wraps it (`Connection`,
its pool proxy, a `Transaction`), and on leaving commits through those wrappers and checks it
back in, where the pool resets it (a ROLLBACK). For the append, whose statements already run on
the driver (store/prepared.py), that was about half the CPU of a commit (bench/analysis.md). So
the writes keep one `Connection` between transactions, and BEGIN, COMMIT and ROLLBACK go to its
driver connection: what is left per transaction is what the database itself does.

Only one thread writes on it at a time: a write that finds it busy (another thread, or a write
inside a write) takes a pooled connection as before (`SqlEventStore._write`). A connection the
driver or SQLAlchemy found lost (a restarted PostgreSQL), or one whose ROLLBACK failed, is
discarded, and the next transaction opens a fresh one: as with the pool, one transaction fails
(`StoreUnavailable`) and the next works. Statements that go through SQLAlchemy instead of the
driver (the cold paths: migrations, a conflict's diagnosis) still work: SQLAlchemy's own
transaction then ends it, with the same effect.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine

from .prepared import driver_error

__all__ = ["DriverTransactions", "HeldWriter"]

log = logging.getLogger(__name__)


class DriverTransactions:
    """How a transaction begins and ends on the held connection's driver: pysqlite's and psycopg's
    own `commit()` and `rollback()`, their driver beginning by itself with the first statement.
    Subclasses send their own BEGIN (SQLite's IMMEDIATE) or run the transaction in a pipeline
    (PostgreSQL). Errors are the driver's, raised as SQLAlchemy would (`driver_error`)."""

    options: ClassVar[Mapping[str, Any]] = {}  # execution options of the held connection

    def opened(self, conn: Connection) -> None:
        """A new held connection (from the pool, once `options` are set on it)."""

    def begin(self, conn: Connection) -> None:
        """Start a transaction (nothing: the driver begins with the first statement)."""

    def commit(self, conn: Connection) -> None:
        driver = _driver(conn)
        try:
            driver.commit()
        except conn.dialect.loaded_dbapi.Error as error:
            raise driver_error(conn, "COMMIT", (), error, driver, None) from error

    def rollback(self, conn: Connection) -> None:
        """End a failed transaction, whatever state it was left in; raising means the connection cannot be reused."""
        _driver(conn).rollback()


class HeldWriter(AbstractContextManager[Connection]):
    """One write transaction at a time on a connection kept open; `try_acquire`, then `with`.

    ``transactions`` begins and ends them on the driver; ``translate`` turns an error into the
    store's own (`StoreUnavailable`, ...), as `_translate_errors` does for the pool's.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        transactions: DriverTransactions,
        translate: Callable[[BaseException], BaseException],
    ) -> None:
        self._engine = engine
        self._transactions = transactions
        self._translate = translate
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self.opened = 0  # connections taken from the pool so far (tests, diagnostics)

    def try_acquire(self) -> bool:
        """Take the connection for one transaction (the `with` that follows releases it); False if busy."""
        return self._lock.acquire(blocking=False)

    def __enter__(self) -> Connection:
        try:
            conn = self._conn
            if conn is None or conn.invalidated:
                conn = self._open()
            self._transactions.begin(conn)
        except BaseException as error:
            self._end_failed()
            self._lock.release()
            translated = self._translate(error)
            if translated is error:
                raise
            raise translated from error
        return conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                try:
                    self._commit()
                except BaseException as error:
                    self._end_failed()
                    translated = self._translate(error)
                    if translated is error:
                        raise
                    raise translated from error
                return
            self._end_failed()
            translated = self._translate(exc)
            if translated is not exc:
                raise translated from exc
        finally:
            self._lock.release()

    def close(self) -> None:
        """Return the connection to the pool (after a write in progress, if any, ended)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _open(self) -> Connection:
        self._discard()
        conn = self._conn = self._engine.connect()
        self.opened += 1
        if self._transactions.options:
            conn.execution_options(**self._transactions.options)
        self._transactions.opened(conn)
        return conn

    def _commit(self) -> None:
        conn = self._conn
        assert conn is not None
        self._transactions.commit(conn)
        if conn.in_transaction():  # a statement went through SQLAlchemy: end its transaction too (a no-op now)
            conn.commit()

    def _end_failed(self) -> None:
        """Roll back whatever the failed transaction left; a connection that cannot is replaced."""
        conn = self._conn
        if conn is None:
            return
        if conn.invalidated:  # lost (SQLAlchemy or `driver_error` saw a disconnect)
            self._discard()
            # Whatever took it (a server restart) took the pooled connections opened since too, and
            # SQLAlchemy invalidates only those older than the one that failed, which held this
            # long is the oldest: drop them all, so the next transaction opens a live one.
            self._engine.dispose()
            return
        try:
            self._transactions.rollback(conn)
            if conn.in_transaction():
                conn.rollback()
        except Exception as error:  # the connection is in no known state: never reuse it
            log.debug("rolling back the store's write connection failed (%s); it is replaced", error)
            with contextlib.suppress(Exception):
                conn.invalidate(error)
            self._discard()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _driver(conn: Connection) -> Any:
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver
