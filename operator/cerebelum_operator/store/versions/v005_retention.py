"""Migration 5, frozen: retired executions, and finished executions found by age (issue 19, retention).

An execution removed from the store by the retention period leaves one row in
``retired_executions``: when it finished and was removed, and where its history was exported (if
it was), so `cerebelum history` can say where it went. An index on ``executions.updated_at_ms``
finds the oldest finished executions without reading the others. One new table and one index: an
older engine started on a store at version 5 runs as before (it retires nothing).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Index, MetaData, Table, Text

__all__ = ["DESCRIPTION", "apply"]

DESCRIPTION = "retired_executions (what the retention period removed, and where it went) and an index by age"


def apply(conn: Connection) -> None:
    metadata = MetaData(naming_convention={"ix": "ix_%(table_name)s_%(column_0_N_name)s", "pk": "pk_%(table_name)s"})
    retired = Table(
        "retired_executions",
        metadata,
        Column("execution_id", Text, primary_key=True),
        Column("workflow", Text, nullable=False),
        Column("phase", Text, nullable=False),
        Column("finished_at_ms", BigInteger, nullable=False),
        Column("retired_at_ms", BigInteger, nullable=False),
        Column("export", Text),
    )
    metadata.create_all(conn, tables=[retired])
    executions = Table("executions", MetaData(), Column("updated_at_ms", BigInteger))
    Index("ix_executions_updated_at_ms", executions.c.updated_at_ms).create(conn)
