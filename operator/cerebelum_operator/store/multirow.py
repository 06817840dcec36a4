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

__all__ = ["ADVANCED_COLUMNS", "MAX_ROWS", "MultiRow"]

# What an append changes in its execution's row, in the order `MultiRow.advance` takes the values.
ADVANCED_COLUMNS = ("last_seq", "phase", "current_steps", "output", "error", "wake_at_ms", "updated_at_ms")
_Row = TypeVar("_Row")
MAX_ROWS = 1_000  # rows a statement at most, however many parameters SQLite would take


class MultiRow:
    """The SQL and the bound values of many rows a statement, for one SQLite connection's dialect."""

    def __init__(self, *, executions: Table, dialect: Dialect, max_params: int = 999) -> None:
        self._max_params = max_params  # the driver's SQLite build's SQLITE_LIMIT_VARIABLE_NUMBER
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
        # Per table and row keys: the INSERT's head, one row's marks, and each column's bind processing.
        self._insert_shapes: dict[tuple[str, tuple[str, ...]], tuple[str, str, list[Any]]] = {}

    def add_insert(self, statement: Any, table: Table) -> None:
        """``statement`` (a plain INSERT into ``table``) runs as INSERTs of many rows."""
        self._inserts[id(statement)] = (statement, table)

    def add_delete(self, statement: Any, table: Table, *, column: str, param: str) -> None:
        """``statement`` (DELETE FROM ``table`` WHERE ``column`` = :``param``) runs as one DELETE ... IN."""
        self._deletes[id(statement)] = (statement, table, column, param)

    def statements(self, statement: Any, rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[Any]]] | None:
        """``statement`` run for ``rows`` (all with the same keys) as few statements; None: not one of
        those added, the caller runs it row by row."""
        if (insert := self._inserts.get(id(statement))) is not None:
            return self.insert_rows(insert[1], rows)
        if (delete := self._deletes.get(id(statement))) is not None:
            _, table, column, param = delete
            quote, out = self._quote, []
            for chunk in self._chunks(rows, 1):
                marks = ", ".join(["?"] * len(chunk))
                sql = f"DELETE FROM {quote(table.name)} WHERE {quote(column)} IN ({marks})"
                out.append((sql, [row[param] for row in chunk]))
            return out
        return None

    def insert_rows(self, table: Table, rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
        """The INSERTs of ``rows`` (all with the same keys, ``table``'s column names) into ``table``."""
        names = tuple(rows[0])
        shape = self._insert_shapes.get((table.name, names))
        if shape is None:
            quote = self._quote
            head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in names)}) VALUES "
            row_sql = "(" + ", ".join(["?"] * len(names)) + ")"
            shape = self._insert_shapes[(table.name, names)] = (
                head,
                row_sql,
                [_processor(table, name, self._dialect) for name in names],
            )
        head, row_sql, processors = shape
        pairs = list(zip(names, processors, strict=True))
        out = []
        for chunk in self._chunks(rows, len(names)):
            values: list[Any] = []
            for row in chunk:
                values += [row[name] if process is None else process(row[name]) for name, process in pairs]
            out.append((head + ", ".join([row_sql] * len(chunk)), values))
        return out

    def _chunks(self, rows: Sequence[_Row], params_per_row: int) -> list[Sequence[_Row]]:
        """``rows`` in runs that each fit one statement's parameters."""
        size = max(1, min(MAX_ROWS, self._max_params // params_per_row))
        return [rows[start : start + size] for start in range(0, len(rows), size)]

    def advance(self, rows: Sequence[tuple[str, int, str, dict[str, Any]]]) -> list[tuple[str, list[Any]]]:
        """The guarded UPDATEs of ``rows``: (execution id, expected seq, workflow, the row's new values
        by column, `ADVANCED_COLUMNS` each). Each statement changes as many rows as it has (one each)
        unless one is not where its append expects it: the caller counts them."""
        pairs = list(zip(ADVANCED_COLUMNS, self._advance_processors, strict=True))
        statements = []
        for chunk in self._chunks(rows, 3 + len(ADVANCED_COLUMNS)):
            values: list[Any] = []
            for execution_id, expected_seq, workflow, changed in chunk:
                values += (execution_id, expected_seq, workflow)
                values += [changed[name] if process is None else process(changed[name]) for name, process in pairs]
            sql = self._advance_head + ", ".join([self._advance_row] * len(chunk)) + self._advance_tail
            statements.append((sql, values))
        return statements


def _processor(table: Table, name: str, dialect: Dialect) -> Callable[[Any], Any] | None:
    processor: Callable[[Any], Any] | None = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
    return processor
