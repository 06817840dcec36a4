"""SQLite: a group commit's row-per-append statements as a few statements of many rows each.

`sqlite3` gives up the GIL around every step of a statement, and takes it back after: one
`executemany` of a hundred rows is a hundred hand-offs. Under load the engine's event loop holds
the GIL most of the time, so each hand-back waits for it: profiled on the throughput shape, the
store's thread spent more time waiting for the GIL than running, and a group commit took ~150 ms
for 0.02-0.04 s of its own CPU, which every step and start waited out (bench/analysis.md). One
statement of many rows is one hand-off.

SQLAlchemy builds neither of these for SQLite (its ``values()`` renders a column list after the
alias, which SQLite does not take), so the SQL text is built here, from the tables' own names and
with each column's own bind processing from SQLAlchemy's dialect, as `store/prepared.py` does for
one row. PostgreSQL keeps its pipelined statements: its hand-offs are network round trips either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.engine import Dialect

__all__ = ["ADVANCED_COLUMNS", "MultiRow"]

# What an append changes in its execution's row, in the order `MultiRow.advance` takes the values.
ADVANCED_COLUMNS = ("last_seq", "phase", "current_steps", "output", "error", "wake_at_ms", "updated_at_ms")
_Row = TypeVar("_Row")
_CHUNK = 128  # rows per statement: 128 x 10 parameters, far under SQLite's 32,766


class MultiRow:
    """The SQL and the bound values of many rows a statement, for one SQLite connection's dialect."""

    def __init__(self, *, executions: Table, events: Table, dialect: Dialect) -> None:
        quote = self._quote = dialect.identifier_preparer.quote
        self._dialect = dialect
        # Kept with their statements, so that the ids keying them are never reused.
        self._inserts: dict[int, tuple[Any, Table]] = {}
        self._deletes: dict[int, tuple[Any, Table, str, str]] = {}
        x = quote(executions.name)
        sets = ", ".join(f"{quote(name)} = v.column{index}" for index, name in enumerate(ADVANCED_COLUMNS, start=4))
        self._advance_head = f"UPDATE {x} SET {sets} FROM (VALUES "
        self._advance_tail = (
            f") AS v WHERE {x}.{quote('execution_id')} = v.column1"
            f" AND {x}.{quote('last_seq')} = v.column2 AND {x}.{quote('workflow')} = v.column3"
        )
        self._advance_row = "(" + ", ".join(["?"] * (3 + len(ADVANCED_COLUMNS))) + ")"
        self._advance_processors = [_processor(executions, name, dialect) for name in ADVANCED_COLUMNS]
        self.event_columns = [column.name for column in events.columns]
        self._events_head = (
            f"INSERT INTO {quote(events.name)} ({', '.join(quote(name) for name in self.event_columns)}) VALUES "
        )
        self._event_row = "(" + ", ".join(["?"] * len(self.event_columns)) + ")"
        self._event_processors = [_processor(events, name, dialect) for name in self.event_columns]

    def add_insert(self, statement: Any, table: Table) -> None:
        """``statement`` (a plain INSERT into ``table``) runs as INSERTs of many rows."""
        self._inserts[id(statement)] = (statement, table)

    def add_delete(self, statement: Any, table: Table, *, column: str, param: str) -> None:
        """``statement`` (DELETE FROM ``table`` WHERE ``column`` = :``param``) runs as one DELETE ... IN."""
        self._deletes[id(statement)] = (statement, table, column, param)

    def statements(self, statement: Any, rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[Any]]] | None:
        """``statement`` run for ``rows`` (all with the same keys) as few statements; None: not one of
        those added, the caller runs it row by row."""
        quote = self._quote
        if (insert := self._inserts.get(id(statement))) is not None:
            table = insert[1]
            names = list(rows[0])
            processors = [_processor(table, name, self._dialect) for name in names]
            head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in names)}) VALUES "
            row_sql = "(" + ", ".join(["?"] * len(names)) + ")"
            out = []
            for chunk in _chunks(rows):
                values: list[Any] = []
                for row in chunk:
                    processed = zip(names, processors, strict=True)
                    values += [row[name] if process is None else process(row[name]) for name, process in processed]
                out.append((head + ", ".join([row_sql] * len(chunk)), values))
            return out
        if (delete := self._deletes.get(id(statement))) is not None:
            _, table, column, param = delete
            out = []
            for chunk in _chunks(rows):
                marks = ", ".join(["?"] * len(chunk))
                sql = f"DELETE FROM {quote(table.name)} WHERE {quote(column)} IN ({marks})"
                out.append((sql, [row[param] for row in chunk]))
            return out
        return None

    def advance(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[str, list[Any]]]:
        """The guarded UPDATEs of ``rows``: (execution id, expected seq, workflow, *ADVANCED_COLUMNS)
        each. Each statement changes as many rows as it has (one each) unless one is not where its
        append expects it: the caller counts them."""
        statements = []
        for chunk in _chunks(rows):
            values: list[Any] = []
            for execution_id, expected_seq, workflow, *changed in chunk:
                values += (execution_id, expected_seq, workflow)
                values += [
                    value if process is None else process(value)
                    for value, process in zip(changed, self._advance_processors, strict=True)
                ]
            sql = self._advance_head + ", ".join([self._advance_row] * len(chunk)) + self._advance_tail
            statements.append((sql, values))
        return statements

    def insert_events(self, rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
        """The INSERTs of ``rows`` (the events table's columns by name)."""
        statements = []
        pairs = list(zip(self.event_columns, self._event_processors, strict=True))
        for chunk in _chunks(rows):
            values: list[Any] = []
            for row in chunk:
                values += [row[name] if process is None else process(row[name]) for name, process in pairs]
            statements.append((self._events_head + ", ".join([self._event_row] * len(chunk)), values))
        return statements


def _processor(table: Table, name: str, dialect: Dialect) -> Callable[[Any], Any] | None:
    processor: Callable[[Any], Any] | None = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _chunks(rows: Sequence[_Row]) -> list[Sequence[_Row]]:
    return [rows[start : start + _CHUNK] for start in range(0, len(rows), _CHUNK)]
