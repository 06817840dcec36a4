"""Migration 8, frozen: execution labels, and indexes for a paged, filtered listing of executions.

``execution_labels`` holds an execution's labels, one row per key, written in the transaction that
creates the execution row and removed with it (ON DELETE CASCADE, and retention deletes them
explicitly too). Its index on (key, value, execution_id) finds the executions of one label without
reading the others. An index on ``executions (phase, created_at_ms)`` serves the newest-first
listing filtered by phase. One new table and one index: an engine of schema 7 still runs on a store
at version 8 (its executions get no labels).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, ForeignKey, Index, MetaData, PrimaryKeyConstraint, Table, Text

__all__ = ["DESCRIPTION", "apply"]

DESCRIPTION = "execution_labels (key, value per execution) and an index on executions (phase, created_at_ms)"


def apply(conn: Connection) -> None:
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    executions = Table(
        "executions",
        metadata,
        Column("execution_id", Text, primary_key=True),
        Column("phase", Text),
        Column("created_at_ms", BigInteger),
    )
    labels = Table(
        "execution_labels",
        metadata,
        Column("execution_id", Text, ForeignKey("executions.execution_id", ondelete="CASCADE"), nullable=False),
        Column("key", Text, nullable=False),
        Column("value", Text, nullable=False),
        PrimaryKeyConstraint("execution_id", "key"),
        Index(None, "key", "value", "execution_id"),
    )
    metadata.create_all(conn, tables=[labels])
    Index("ix_executions_phase_created_at_ms", executions.c.phase, executions.c.created_at_ms).create(conn)
