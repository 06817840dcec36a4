"""Migration 7, frozen: flow control of task queues (issue 19: pause, rate limits, priorities).

``tasks`` gains what a task carries for the dispatcher: ``priority`` (NOT NULL, default 0),
``flow_key`` and its rate limit (``key_rate_count`` per ``key_rate_period_ms``), nullable. Two new
tables: ``task_queues``, an engine-wide setting per queue (paused, a rate limit), and
``task_starts``, the start (lease) time of each task a rate limit counted and until when a window
may see it (the longest period that counted it), written in the lease's own transaction, so a
restarted engine rebuilds every window from durable facts instead of starting it empty. Only
columns with defaults and new tables: an engine of schema 5 or 6 still runs on a store at version 7
(its tasks get priority 0 and no key; it neither pauses nor limits anything).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Connection, Index, Integer, MetaData, Table, Text, text

__all__ = ["DESCRIPTION", "apply"]

DESCRIPTION = "task flow control: tasks.priority/flow_key/key_rate_*, task_queues (pause, rate) and task_starts"


def apply(conn: Connection) -> None:
    for ddl in (
        "ALTER TABLE tasks ADD COLUMN priority INTEGER DEFAULT 0 NOT NULL",
        "ALTER TABLE tasks ADD COLUMN flow_key TEXT",
        "ALTER TABLE tasks ADD COLUMN key_rate_count INTEGER",
        "ALTER TABLE tasks ADD COLUMN key_rate_period_ms BIGINT",
    ):
        conn.execute(text(ddl))
    metadata = MetaData(naming_convention={"ix": "ix_%(table_name)s_%(column_0_N_name)s", "pk": "pk_%(table_name)s"})
    queues = Table(
        "task_queues",
        metadata,
        Column("name", Text, primary_key=True),
        Column("paused", Boolean, nullable=False),
        Column("note", Text, nullable=False),
        Column("rate_count", Integer),
        Column("rate_period_ms", BigInteger),
        Column("updated_at_ms", BigInteger, nullable=False),
    )
    starts = Table(
        "task_starts",
        metadata,
        Column("token", Text, nullable=False),
        Column("task_queue", Text, nullable=False),
        Column("flow_key", Text),
        Column("started_at_ms", BigInteger, nullable=False),
        Column("expires_at_ms", BigInteger, nullable=False),
        Index(None, "expires_at_ms"),
    )
    metadata.create_all(conn, tables=[queues, starts])
