"""Flow slots and paused workflows on SQLAlchemy Core, mixed into `SqlEventStore` (issue 19).

The slot rows are written by the actions of decisions (`WaitForFlowSlot`, `AdmitFlowSlot`,
`FreeFlowSlot`, in sql.py's action handlers); this reads them back for the admission service, and
keeps the table of paused workflows, which the API writes directly.
"""

from __future__ import annotations

import abc
from collections.abc import Collection
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, func, select
from sqlalchemy.sql.dml import Insert

from . import schema
from .base import FlowSlotRow, WorkflowPauseRow

__all__ = ["SqlFlowControl"]

_HELD_PHASES = ("Paused", "Queued")


def _slot_rows() -> Any:  # a Select of FlowSlotRow's columns, in its order
    f = schema.flow_slots
    return select(f.c.execution_id, f.c.workflow, f.c.flow_key, f.c.priority, f.c.slot_limit, f.c.running, f.c.since_ms)


class SqlFlowControl(abc.ABC):
    """`EventStore`'s flow-control methods, on the connections and conflict-aware INSERT of the store."""

    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Connection]: ...

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Connection]: ...

    @abc.abstractmethod
    def _insert_or_replace(self, table: Table, key: str) -> Insert: ...

    @abc.abstractmethod
    def _work_of(self, shards: Collection[int] | None) -> Collection[int] | None: ...

    def list_flow_slots(self) -> list[FlowSlotRow]:
        with self._read() as conn:
            rows = conn.execute(_slot_rows().order_by(schema.flow_slots.c.since_ms, schema.flow_slots.c.execution_id))
            return [FlowSlotRow(*row) for row in rows]

    def flow_slots_here(self) -> tuple[list[FlowSlotRow], dict[tuple[str, str], int]]:
        f, x = schema.flow_slots, schema.executions
        shards = self._work_of(None)
        own = _slot_rows().join(x, x.c.execution_id == f.c.execution_id)
        if shards is not None:
            own = own.where(x.c.shard.in_(sorted(shards)))
        # Running slots are bounded by the limits; the lines are those of this engine's executions.
        lines = own.with_only_columns(f.c.workflow, f.c.flow_key).distinct().subquery()
        own = own.order_by(f.c.since_ms, f.c.execution_id)
        running = (
            select(f.c.workflow, f.c.flow_key, func.count())
            .join(lines, and_(lines.c.workflow == f.c.workflow, lines.c.flow_key == f.c.flow_key))
            .where(f.c.running)
            .group_by(f.c.workflow, f.c.flow_key)
        )
        with self._read() as conn:
            rows = [FlowSlotRow(*row) for row in conn.execute(own)]
            counts = {(workflow, key): int(count) for workflow, key, count in conn.execute(running)}
        return rows, counts

    def put_workflow_pause(self, workflow: str, *, reason: str, by: str, now_ms: int) -> WorkflowPauseRow:
        p = schema.workflow_pauses
        row = WorkflowPauseRow(workflow, reason, by, now_ms)
        with self._write() as conn:
            conn.execute(
                self._insert_or_replace(p, "workflow"),
                {"workflow": workflow, "reason": reason, "paused_by": by, "paused_at_ms": now_ms},
            )
        return row

    def delete_workflow_pause(self, workflow: str) -> bool:
        p = schema.workflow_pauses
        with self._write() as conn:
            return conn.execute(delete(p).where(p.c.workflow == workflow).returning(p.c.workflow)).first() is not None

    def list_workflow_pauses(self) -> list[WorkflowPauseRow]:
        p = schema.workflow_pauses
        with self._read() as conn:
            rows = conn.execute(
                select(p.c.workflow, p.c.reason, p.c.paused_by, p.c.paused_at_ms).order_by(p.c.workflow)
            ).all()
        return [WorkflowPauseRow(*row) for row in rows]

    def held_executions(self, workflow: str, *, after_id: str, limit: int) -> list[str]:
        """Ids of the workflow's executions shown Paused or Queued after ``after_id``, in id order; with a
        fence, those of its shards only (each engine of a split resumes its own)."""
        x = schema.executions
        query = select(x.c.execution_id).where(
            and_(x.c.workflow == workflow, x.c.phase.in_(_HELD_PHASES), x.c.execution_id > after_id)
        )
        shards = self._work_of(None)
        if shards is not None:
            query = query.where(x.c.shard.in_(sorted(shards)))
        with self._read() as conn:
            return list(conn.scalars(query.order_by(x.c.execution_id).limit(limit)))
