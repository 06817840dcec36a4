"""Listing executions page by page under filters, their counts by phase, and their labels (migration 8).

Mixed into `SqlEventStore`. Pages are a keyset on (created_at_ms, execution_id), newest first:
each page starts strictly after the last row of the one before, so it costs the same at page 1
and page 1,000 and a row is never skipped or shown twice when executions share a millisecond or
start meanwhile. Every filter is an indexed condition except the id's substring (a scan of the
newest executions until the page is full).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, func, or_, select

from . import schema
from .base import ExecutionPage, ExecutionQuery, ExecutionRow, PageCursor

__all__ = ["MAX_PAGE_SIZE", "SqlListing", "label_rows"]

MAX_PAGE_SIZE = 1000
_ESCAPE = "\\"
_LB = schema.execution_labels
# One execution's labels (a start's reply, GetExecution, WaitExecution): built once, so a call is a
# cache hit; building the IN statement per call cost about twice the query itself on SQLite.
_LABELS_OF_ONE = select(_LB.c.key, _LB.c.value).where(_LB.c.execution_id == bindparam("b_execution_id"))


class SqlListing(abc.ABC):
    """`EventStore`'s listing methods, on the store's read connections and its execution columns."""

    _execution_columns: list[Any]

    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Connection]: ...

    def list_executions_page(self, query: ExecutionQuery, *, after: PageCursor | None, limit: int) -> ExecutionPage:
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"a page holds 1 to {MAX_PAGE_SIZE} executions, not {limit}")
        x = schema.executions
        statement = _filtered(select(*self._execution_columns), query, phases=True)
        if after is not None:
            statement = statement.where(
                or_(
                    x.c.created_at_ms < after.created_at_ms,
                    and_(x.c.created_at_ms == after.created_at_ms, x.c.execution_id < after.execution_id),
                )
            )
        statement = statement.order_by(x.c.created_at_ms.desc(), x.c.execution_id.desc()).limit(limit + 1)
        with self._read() as conn:
            rows = [ExecutionRow(*row) for row in conn.execute(statement)]
        if len(rows) <= limit:
            return ExecutionPage(rows, None)
        last = rows[limit - 1]
        return ExecutionPage(rows[:limit], PageCursor(last.created_at_ms, last.execution_id))

    def count_executions_by_phase(self, query: ExecutionQuery) -> dict[str, int]:
        x = schema.executions
        statement = _filtered(select(x.c.phase, func.count()), query, phases=False).group_by(x.c.phase)
        with self._read() as conn:
            return {phase: int(count) for phase, count in conn.execute(statement)}

    def labels_of(self, execution_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        if not execution_ids:
            return {}
        lb = schema.execution_labels
        found: dict[str, dict[str, str]] = {}
        if len(set(execution_ids)) == 1:
            execution_id = execution_ids[0]
            with self._read() as conn:
                rows = conn.execute(_LABELS_OF_ONE, {"b_execution_id": execution_id}).all()
            labels = {str(key): str(value) for key, value in sorted(rows)}
            return {execution_id: labels} if labels else {}
        with self._read() as conn:
            for start in range(0, len(execution_ids), 500):  # bound the statement's parameters
                chunk = list(dict.fromkeys(execution_ids[start : start + 500]))
                statement = (
                    select(lb.c.execution_id, lb.c.key, lb.c.value)
                    .where(lb.c.execution_id.in_(chunk))
                    .order_by(lb.c.execution_id, lb.c.key)
                )
                for execution_id, key, value in conn.execute(statement):
                    found.setdefault(execution_id, {})[key] = value
        return found


def label_rows(execution_id: str, labels: dict[str, str] | Any) -> list[dict[str, str]]:
    """The rows of ``execution_labels`` for one execution's labels, by key."""
    return [{"execution_id": execution_id, "key": key, "value": labels[key]} for key in sorted(labels)]


def _filtered(statement: Select[Any], query: ExecutionQuery, *, phases: bool) -> Select[Any]:
    x = schema.executions
    conditions: list[ColumnElement[bool]] = []
    if query.workflow is not None:
        conditions.append(x.c.workflow == query.workflow)
    if phases and query.phases:
        conditions.append(x.c.phase.in_(sorted(set(query.phases))))
    if query.created_from_ms is not None:
        conditions.append(x.c.created_at_ms >= query.created_from_ms)
    if query.created_to_ms is not None:
        conditions.append(x.c.created_at_ms < query.created_to_ms)
    if query.id_contains:
        conditions.append(_contains(x.c.execution_id, query.id_contains))
    lb = schema.execution_labels
    for key, value in dict(query.labels).items():
        labelled = select(lb.c.execution_id).where(lb.c.key == key, lb.c.value == value)
        conditions.append(x.c.execution_id.in_(labelled))
    return statement.where(*conditions) if conditions else statement


def _contains(column: Any, text: str) -> ColumnElement[bool]:
    """``column`` holds ``text``, ASCII case ignored on both databases (SQLite's LIKE ignores it
    already; PostgreSQL's ILIKE does too), with ``%``, ``_`` and the escape itself taken literally."""
    escaped = text.replace(_ESCAPE, _ESCAPE * 2).replace("%", _ESCAPE + "%").replace("_", _ESCAPE + "_")
    result: ColumnElement[bool] = column.ilike(f"%{escaped}%", escape=_ESCAPE)
    return result
