"""Migration 6, frozen: flow slots and paused workflows (issue 19, flow control and pause).

``flow_slots`` holds one row per execution of a workflow with a concurrency limit, written in
the same transaction as the decisions that make it wait, admit it and end it; ``workflow_pauses``
the workflows whose new executions start held. Two new tables: an older engine started on a store
at version 6 runs as before, and does not honour either (the events that hold executions are of
format 3, which it refuses, so a rollback stops at start once one was written).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)

__all__ = ["DESCRIPTION", "apply"]

DESCRIPTION = "flow_slots (who runs and who waits per flow key) and workflow_pauses"


def apply(conn: Connection) -> None:
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    Table("executions", metadata, Column("execution_id", Text, primary_key=True))
    slots = Table(
        "flow_slots",
        metadata,
        Column(
            "execution_id",
            Text,
            ForeignKey("executions.execution_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("workflow", Text, nullable=False),
        Column("flow_key", Text, nullable=False),
        Column("priority", Integer, nullable=False),
        Column("slot_limit", Integer, nullable=False),
        Column("running", Boolean, nullable=False),
        Column("since_ms", BigInteger, nullable=False),
        Index(None, "workflow", "flow_key"),
    )
    pauses = Table(
        "workflow_pauses",
        metadata,
        Column("workflow", Text, primary_key=True),
        Column("reason", Text, nullable=False),
        Column("paused_by", Text, nullable=False),
        Column("paused_at_ms", BigInteger, nullable=False),
    )
    metadata.create_all(conn, tables=[slots, pauses])
