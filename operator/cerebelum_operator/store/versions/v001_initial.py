"""Migration 1, frozen: the tables as release 0.x created them.

A migration's DDL never changes once released: `schema.py` describes the latest schema, and a
store created by an older release must end up with exactly what a new one gets. So this copy
of the version-1 tables stays as it was when version 2 came; later changes are new versions.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

__all__ = ["DESCRIPTION", "apply"]

DESCRIPTION = "workflows, executions, events, tasks, timers and dead letters"

JSONValue = JSON().with_variant(JSONB(), "postgresql")
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _execution_fk() -> ForeignKey:
    return ForeignKey("executions.execution_id", ondelete="CASCADE")


workflows = Table(
    "workflows",
    metadata,
    Column("name", Text, primary_key=True),
    Column("spec", JSONValue, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)

executions = Table(
    "executions",
    metadata,
    Column("execution_id", Text, primary_key=True),
    Column("workflow", Text, nullable=False),
    Column("spec", JSONValue, nullable=False),
    Column("spec_hash", Text, nullable=False),
    Column("input", JSONValue),
    Column("phase", Text, nullable=False),
    Column("current_steps", JSONValue, nullable=False),
    Column("output", JSONValue),
    Column("error", Text),
    Column("wake_at_ms", BigInteger),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Index(None, "phase"),
    Index(None, "workflow", "created_at_ms"),
    Index(None, "created_at_ms"),
)

events = Table(
    "events",
    metadata,
    Column("execution_id", Text, _execution_fk(), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("data", JSONValue, nullable=False),
    PrimaryKeyConstraint("execution_id", "seq"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("token", Text, primary_key=True),
    Column("execution_id", Text, _execution_fk(), nullable=False),
    Column("step", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("poll", Integer, nullable=False),
    Column("task_queue", Text, nullable=False),
    Column("arguments", JSONValue),
    Column("visible_at_ms", BigInteger, nullable=False),
    Column("timeout_ms", BigInteger, nullable=False),
    Column("lease_ms", BigInteger, nullable=False),
    Column("heartbeat_required", Boolean, nullable=False),
    Column("sticky_worker_id", Text),
    Column("state", Text, nullable=False),
    Column("worker_id", Text),
    Column("lease_expires_at_ms", BigInteger),
    Column("attempt_deadline_ms", BigInteger),
    Column("cancel_requested", Boolean, nullable=False),
    Column("progress", JSONValue),
    Column("workflow", Text, nullable=False),
    Index(None, "state", "task_queue", "visible_at_ms"),
    Index(None, "state", "lease_expires_at_ms"),
)

timers = Table(
    "timers",
    metadata,
    Column("timer_id", Text, primary_key=True),
    Column("execution_id", Text, _execution_fk(), nullable=False),
    Column("fire_at_ms", BigInteger, nullable=False),
    Index(None, "fire_at_ms"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("dead_letter_id", Text, primary_key=True),
    Column("execution_id", Text, _execution_fk(), nullable=False),
    Column("step", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("resolved_at_ms", BigInteger),
    Index(None, "execution_id"),
)


def apply(conn: Connection) -> None:
    metadata.create_all(conn)
