"""`PostgresEventStore`: PostgreSQL through psycopg 3, for clustered deployments."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from typing import Any, ClassVar

import psycopg
from psycopg import pq
from sqlalchemy import Connection, Integer, Table, Text, bindparam, create_engine, event, func, literal, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

from .held import DriverTransactions
from .pg_shard_locks import ShardSession
from .prepared import driver_error
from .sql import SqlEventStore, dumps_json

__all__ = ["PostgresEventStore", "normalise_url"]

# Any fixed 64-bit key, shared by every process migrating the same database.
_MIGRATION_LOCK_KEY = 0x6365726562656C75  # "cerebelu"
# The first key of a rate window's lock (the second: the hash of `queue:<name>` or `key:<name>`); the shard locks'
# first key is "cere" (`pg_shard_locks.LOCK_CLASS`): two-key locks of another class never meet them.
_RATE_LOCK_CLASS = 0x72617465  # "rate"
_LOCK_RATE_WINDOW = select(
    func.pg_advisory_xact_lock(literal(_RATE_LOCK_CLASS, Integer), func.hashtext(bindparam("b_window", type_=Text)))
)


def normalise_url(url: str | URL) -> URL:
    """Use psycopg 3 whatever driver the URL names (plain `postgresql://` means psycopg2 to SQLAlchemy)."""
    url = make_url(url)
    return url.set(drivername="postgresql+psycopg")


class PostgresEventStore(SqlEventStore):
    """Writes run at READ COMMITTED: the guarded UPDATE of `last_seq` is what serialises appenders."""

    def __init__(self, url: str | URL, *, pool_size: int = 5) -> None:
        url = normalise_url(url)
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            # No pre-ping (a round trip per transaction): after a server restart one transaction
            # fails with a disconnect error and SQLAlchemy then replaces the whole pool.
            pool_pre_ping=False,
            json_serializer=dumps_json,
        )
        # Single-statement reads need no transaction: skip BEGIN/ROLLBACK round trips.
        super().__init__(
            engine,
            label=url.render_as_string(hide_password=True),
            read_options={"isolation_level": "AUTOCOMMIT"},
            transactions=_PipelinedTransactions(),
        )

    def shard_session(self, member: str) -> ShardSession:
        """A session of its own for `member`'s shard locks (`pg_shard_locks`), not yet joined."""
        url = self._engine.url.set(drivername="postgresql")
        return ShardSession(url.render_as_string(hide_password=False), member=member)

    def _insert_or_ignore(self, table: Table) -> Insert:
        return pg_insert(table).on_conflict_do_nothing()

    def _insert_or_replace(self, table: Table, key: str) -> Insert:
        stmt = pg_insert(table)
        others = {c.name: stmt.excluded[c.name] for c in table.columns if c.name != key}
        return stmt.on_conflict_do_update(index_elements=[key], set_=others)

    def _lock_rate_window(self, conn: Connection, window: str) -> None:
        self._prepared.first(conn, _LOCK_RATE_WINDOW, {"b_window": window})  # in the append's pipeline

    def _lock_migrations(self, conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})

    def _batched(self, conn: Connection) -> AbstractContextManager[object]:
        """psycopg's pipeline mode: the events and actions go out in one round trip, not one each."""
        driver = conn.connection.driver_connection
        if not isinstance(driver, psycopg.Connection) or not psycopg.Pipeline.is_supported():
            return nullcontext()  # libpq older than 14: one round trip per statement
        if driver.pgconn.pipeline_status != pq.PipelineStatus.OFF:
            return nullcontext()  # the held connection's transaction is one pipeline already
        return _pipeline(driver)


@contextmanager
def _pipeline(driver: psycopg.Connection[Any]) -> Iterator[None]:
    # Errors of pipelined statements surface when the pipeline syncs, outside SQLAlchemy:
    # wrap them as SQLAlchemy would have (IntegrityError, OperationalError, ...).
    try:
        with driver.pipeline():
            yield
    except psycopg.Error as e:
        raise DBAPIError.instance(None, None, e, psycopg.Error) from e


class _PipelinedTransactions(DriverTransactions):
    """The held write connection (store/held.py) in autocommit, the store sending BEGIN, COMMIT and
    ROLLBACK itself, the whole transaction in one pipeline: BEGIN goes out with the first statement
    whose result is read, COMMIT with the statements nobody reads (the events and actions), so an
    append costs two round trips instead of four.

    A statement that goes through SQLAlchemy (the cold paths: migrations, a conflict's diagnosis,
    the fence's epochs) reads its result before fetching it, which a pipeline does not allow:
    the pipeline is synced and left before it, and the rest of the transaction runs without one.
    Only the thread holding the connection touches `_pipeline`.
    """

    options: ClassVar[Mapping[str, Any]] = {"isolation_level": "AUTOCOMMIT"}

    def __init__(self) -> None:
        self._pipeline: AbstractContextManager[Any] | None = None

    def opened(self, conn: Connection) -> None:
        self._pipeline = None  # a lost connection's, if it was lost in a transaction
        event.listen(conn, "before_cursor_execute", self._before_sqlalchemy_execute)

    def begin(self, conn: Connection) -> None:
        driver = _psycopg(conn)
        try:
            if psycopg.Pipeline.is_supported():
                pipeline = driver.pipeline()
                pipeline.__enter__()
                self._pipeline = pipeline
            driver.execute("BEGIN", prepare=False)
        except psycopg.Error as error:
            raise driver_error(conn, "BEGIN", (), error, driver, None) from error

    def commit(self, conn: Connection) -> None:
        driver = _psycopg(conn)
        try:
            driver.execute("COMMIT", prepare=False)
            self._leave_pipeline()  # everything queued goes out; the first error raises
        except psycopg.Error as error:
            raise driver_error(conn, "COMMIT", (), error, driver, None) from error

    def rollback(self, conn: Connection) -> None:
        driver = _psycopg(conn)
        with suppress(psycopg.Error):  # the queued statements' errors: what is being rolled back
            self._leave_pipeline()
        if driver.info.transaction_status != pq.TransactionStatus.IDLE:
            driver.execute("ROLLBACK", prepare=False)

    def _leave_pipeline(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.__exit__(None, None, None)

    def _before_sqlalchemy_execute(self, conn: Connection, *_args: Any) -> None:
        if self._pipeline is None:
            return
        driver = _psycopg(conn)
        try:
            self._leave_pipeline()
        except psycopg.Error as error:
            raise driver_error(conn, "(the pipeline before this statement)", (), error, driver, None) from error


def _psycopg(conn: Connection) -> psycopg.Connection[Any]:
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver
