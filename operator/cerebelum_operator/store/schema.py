"""The store's tables as SQLAlchemy Core metadata: the latest schema, shared by every database.

Migrations (see `migrations`) create and evolve these tables; runtime code only builds
statements from them and never reflects the database, so nothing is looked up per call.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "JSONValue",
    "dead_letters",
    "events",
    "execution_labels",
    "execution_runs",
    "executions",
    "flow_slots",
    "metadata",
    "outbox",
    "retired_executions",
    "schedules",
    "schema_migrations",
    "shard_owners",
    "store_compatibility",
    "task_queues",
    "task_starts",
    "tasks",
    "timers",
    "workflow_pauses",
    "workflows",
]

# JSONB on PostgreSQL (compact, comparable); JSON text elsewhere.
JSONValue = JSON().with_variant(JSONB(), "postgresql")

# Stable constraint names, so later migrations can refer to them on every database.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _execution_fk() -> ForeignKey:
    # Rows derived from an execution go with it, should executions ever be purged.
    return ForeignKey("executions.execution_id", ondelete="CASCADE")


schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at_ms", BigInteger, nullable=False),
)

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
    Index(None, "updated_at_ms"),  # migration 5: the oldest finished ones, for the retention period
    Index(None, "phase", "created_at_ms"),  # migration 8: the newest first of some phases
    # Migration 9: the shard whose owner decides for it (a child is in its parent's, a run in its chain's).
    Column("shard", Integer, nullable=False, server_default=text("0")),
)

# An execution's labels (migration 8), written with its row; what listings filter by.
execution_labels = Table(
    "execution_labels",
    metadata,
    Column("execution_id", Text, _execution_fk(), nullable=False),
    Column("key", Text, nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("execution_id", "key"),
    Index(None, "key", "value", "execution_id"),
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
    # Migration 7: flow control (what the dispatcher orders and limits tasks by).
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Column("flow_key", Text),
    Column("key_rate_count", Integer),
    Column("key_rate_period_ms", BigInteger),
    Index(None, "state", "task_queue", "visible_at_ms"),
    Index(None, "state", "lease_expires_at_ms"),
)

# Flow control of task queues (migration 7): an engine-wide setting per queue, and the starts that a
# rate limit counted, so a window survives a restart (`runtime/queue_gate.py`).
task_queues = Table(
    "task_queues",
    metadata,
    Column("name", Text, primary_key=True),
    Column("paused", Boolean, nullable=False),
    Column("note", Text, nullable=False),
    Column("rate_count", Integer),
    Column("rate_period_ms", BigInteger),
    Column("updated_at_ms", BigInteger, nullable=False),
)

task_starts = Table(
    "task_starts",
    metadata,
    Column("token", Text, nullable=False),
    Column("task_queue", Text, nullable=False),
    Column("flow_key", Text),
    Column("started_at_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Index(None, "expires_at_ms"),
    Index(None, "task_queue", "started_at_ms"),  # migration 10: a window's starts (engines that split)
    Index(None, "flow_key", "started_at_ms"),
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

# Messages from one execution's decision to another execution (start a child, start the next run,
# tell a parent its child ended, cancel a child), written in the decision's transaction and
# relayed after it commits; a row goes when its message was delivered (`runtime/relay.py`).
outbox = Table(
    "outbox",
    metadata,
    Column("message_id", Text, primary_key=True),
    Column("execution_id", Text, _execution_fk(), nullable=False),
    Column("kind", Text, nullable=False),
    Column("body", JSONValue, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Index(None, "created_at_ms"),
)

# The runs after the first of a continue-as-new chain: the chain is named by its first run's id.
execution_runs = Table(
    "execution_runs",
    metadata,
    Column("first_run_id", Text, nullable=False),
    Column("run", Integer, nullable=False),
    Column("execution_id", Text, _execution_fk(), nullable=False),
    PrimaryKeyConstraint("first_run_id", "run"),
)

# Schedules (issue 17): the spec as written, the core's state (`engine.schedules.ScheduleState`)
# and the next fire time for listing. `revision` goes up on every write: a writer that read an
# older one lost a race and reads again (`update_schedule`).
schedules = Table(
    "schedules",
    metadata,
    Column("key", Text, primary_key=True),
    Column("spec", JSONValue, nullable=False),
    Column("state", JSONValue, nullable=False),
    Column("next_fire_at_ms", BigInteger),
    Column("revision", Integer, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    Index(None, "next_fire_at_ms"),
)

# What an engine must know to run on this store (migration 4): the oldest schema version whose
# engine may read it (`schema_readable_by`) and the newest event format in the histories (`events`).
store_compatibility = Table(
    "store_compatibility",
    metadata,
    Column("name", Text, primary_key=True),
    Column("version", Integer, nullable=False),
)

# Executions the retention period removed (migration 5): when, and where their history went.
retired_executions = Table(
    "retired_executions",
    metadata,
    Column("execution_id", Text, primary_key=True),
    Column("workflow", Text, nullable=False),
    Column("phase", Text, nullable=False),
    Column("finished_at_ms", BigInteger, nullable=False),
    Column("retired_at_ms", BigInteger, nullable=False),
    Column("export", Text),
)

# Flow control (migration 6): one row per execution of a workflow with a concurrency limit, from its
# start (waiting) through its admission (running) to its end (deleted), written with the decisions
# that change it; the admission service's book is rebuilt from these rows after a restart.
flow_slots = Table(
    "flow_slots",
    metadata,
    Column("execution_id", Text, _execution_fk(), primary_key=True),
    Column("workflow", Text, nullable=False),
    Column("flow_key", Text, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("slot_limit", Integer, nullable=False),
    Column("running", Boolean, nullable=False),
    Column("since_ms", BigInteger, nullable=False),
    Index(None, "workflow", "flow_key"),
)

# Paused workflows (migration 6): their new executions start held until the workflow is resumed.
workflow_pauses = Table(
    "workflow_pauses",
    metadata,
    Column("workflow", Text, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("paused_by", Text, nullable=False),
    Column("paused_at_ms", BigInteger, nullable=False),
)

# Scale-out (migration 9): one row per shard; a replica takes a shard by raising its epoch, and a
# replica owning only some shards checks in each commit that its epochs still stand (fencing).
shard_owners = Table(
    "shard_owners",
    metadata,
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("epoch", BigInteger, nullable=False),
    Column("owner", Text),
    Column("address", Text),
    Column("taken_at_ms", BigInteger),
)
