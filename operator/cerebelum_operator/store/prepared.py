"""Statements SQLAlchemy compiled once, run on the driver's cursor: the append's hot path.

SQLAlchemy Core caches compiled statements, but every `Connection.execute` still builds an
execution context, looks the statement up in the cache, constructs and processes each
parameter set and wraps the cursor in a result: about as much CPU as SQLite itself takes
to run the statement (bench/analysis.md). Here the statement is still SQLAlchemy's — its
SQL text, its bind order and each bind's type processing (JSON, booleans, PostgreSQL's
casts) come from its compiler for the connection's dialect — but an execution is only
"bind the values, call the driver". The transactions are the driver's too (store/held.py);
pooling and everything off the hot path stay with SQLAlchemy (docs/architecture.md, Store).

Driver errors are raised as SQLAlchemy would raise them (`DBAPIError.instance`), and a
disconnect invalidates the connection, so the store's error translation is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.elements import ClauseElement

__all__ = ["PreparedStatements", "driver_error", "run_sql"]

_Slot = tuple[str | None, Any, Callable[[Any], Any] | None]  # (row key or None, constant, bind processor)


class _Prepared:
    __slots__ = ("named", "positional", "slots", "sql")

    def __init__(self, sql: str, slots: list[_Slot], names: list[str], positional: bool) -> None:
        self.sql = sql
        self.slots = slots
        self.named = names  # the parameter names in the SQL, one per slot (named paramstyles)
        self.positional = positional

    def bind(self, row: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = []
        for key, constant, process in self.slots:
            value = row[key] if key is not None else constant
            values.append(value if process is None else process(value))
        return tuple(values) if self.positional else dict(zip(self.named, values, strict=True))


class PreparedStatements:
    """A cache of statements compiled for one dialect, keyed by the statement and the row's keys."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, tuple[str, ...]], _Prepared] = {}
        self._keep: dict[int, ClauseElement] = {}  # the statements whose ids key the cache stay alive

    def _prepare(self, conn: Connection, statement: ClauseElement, keys: tuple[str, ...]) -> _Prepared:
        cache_key = (id(statement), keys)
        prepared = self._cache.get(cache_key)
        if prepared is not None:
            return prepared
        dialect = conn.dialect
        compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys))
        escaped = compiled.escaped_bind_names or {}
        order = list(compiled.positiontup) if dialect.positional else list(compiled.binds)
        slots: list[_Slot] = []
        names: list[str] = []
        for name in order:
            bind = compiled.binds[name]
            key = bind.key if bind.key in keys else None
            if key is None and bind.required:
                raise ValueError(f"no value for the bind parameter {bind.key!r} of {statement}")
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            slots.append((key, None if key is not None else bind.effective_value, processor))
            names.append(escaped.get(name, name))
        prepared = _Prepared(compiled.string, slots, names, dialect.positional)
        self._cache[cache_key] = prepared
        self._keep[id(statement)] = statement
        return prepared

    def first(self, conn: Connection, statement: ClauseElement, row: dict[str, Any]) -> Any:
        """Run one row; the first row it returns (RETURNING, SELECT), or None.

        Fetched here, so that an error the driver reports only when the result is read (psycopg's
        pipeline mode) is raised as SQLAlchemy would raise it too."""
        rows = self._fetch(conn, statement, row, every=False)
        return rows[0] if rows else None

    def all(self, conn: Connection, statement: ClauseElement, row: dict[str, Any]) -> list[Any]:
        """Run one row; every row it returns, fetched here as `first` fetches."""
        return self._fetch(conn, statement, row, every=True)

    def _fetch(self, conn: Connection, statement: ClauseElement, row: dict[str, Any], *, every: bool) -> list[Any]:
        prepared = self._prepare(conn, statement, tuple(row))
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = driver.cursor()
        params = prepared.bind(row)
        try:
            cursor.execute(prepared.sql, params)
            if every:
                return list(cursor.fetchall())
            found = cursor.fetchone()
            return [] if found is None else [found]
        except conn.dialect.loaded_dbapi.Error as error:
            raise driver_error(conn, prepared.sql, params, error, driver, cursor) from error
        finally:
            cursor.close()

    def executemany(self, conn: Connection, statement: ClauseElement, rows: Sequence[dict[str, Any]]) -> None:
        """Run every row (all with the same keys) in one driver call; nothing is fetched."""
        if not rows:
            return
        prepared = self._prepare(conn, statement, tuple(rows[0]))
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = driver.cursor()
        params = [prepared.bind(row) for row in rows]
        try:
            if len(params) == 1:
                cursor.execute(prepared.sql, params[0])
            else:
                cursor.executemany(prepared.sql, params)
        except conn.dialect.loaded_dbapi.Error as error:
            raise driver_error(conn, prepared.sql, params, error, driver, cursor) from error
        finally:
            cursor.close()


def run_sql(conn: Connection, sql: str, values: Sequence[Any]) -> int:
    """Run SQL text built for the connection's driver (store/multirow.py); the rows it changed.
    Its errors are raised as `PreparedStatements`' are."""
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.execute(sql, values)
        return int(cursor.rowcount)
    except conn.dialect.loaded_dbapi.Error as error:
        raise driver_error(conn, sql, values, error, driver, cursor) from error
    finally:
        cursor.close()


def driver_error(conn: Connection, sql: str, params: Any, error: Any, driver: Any, cursor: Any) -> StatementError:
    """The driver's error as SQLAlchemy raises it; a lost connection is invalidated, as SQLAlchemy would."""
    dialect = conn.dialect
    invalidated = bool(dialect.is_disconnect(error, driver, cursor))
    if invalidated:
        conn.invalidate(error)
    wrapped: StatementError = DBAPIError.instance(
        sql,
        params,
        error,
        dialect.loaded_dbapi.Error,
        connection_invalidated=invalidated,
        dialect=dialect,
    )
    return wrapped
