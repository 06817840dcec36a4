"""Migration 2, frozen: the outbox and the chains of runs (issue 17: children, continue-as-new).

Two new tables and nothing changed in the old ones, so an engine of this release reads every
history an older one wrote, and an older engine started on a store at version 2 runs as before
(it never reads these tables; it would not relay a child's start or a next run, which wait in
the outbox until a new engine comes back).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
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

DESCRIPTION = "outbox (messages between executions) and execution_runs (continue-as-new chains)"

_JSON = JSON().with_variant(JSONB(), "postgresql")


def apply(conn: Connection) -> None:
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    Table("executions", metadata, Column("execution_id", Text, primary_key=True))  # referred to only
    Table(
        "outbox",
        metadata,
        Column("message_id", Text, primary_key=True),
        Column("execution_id", Text, ForeignKey("executions.execution_id", ondelete="CASCADE"), nullable=False),
        Column("kind", Text, nullable=False),
        Column("body", _JSON, nullable=False),
        Column("created_at_ms", BigInteger, nullable=False),
        Index(None, "created_at_ms"),
    )
    Table(
        "execution_runs",
        metadata,
        Column("first_run_id", Text, nullable=False),
        Column("run", Integer, nullable=False),
        Column("execution_id", Text, ForeignKey("executions.execution_id", ondelete="CASCADE"), nullable=False),
        PrimaryKeyConstraint("first_run_id", "run"),
    )
    metadata.create_all(conn, tables=[metadata.tables["outbox"], metadata.tables["execution_runs"]])
