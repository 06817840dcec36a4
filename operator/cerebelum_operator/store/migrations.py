"""Versioned schema migrations, applied in order, each in its own transaction.

Each migration is recorded in `schema_migrations` in the same transaction that applies
it, so a crash mid-way leaves either the old or the new schema, never half of one.
Concurrent `migrate()` calls are serialised by the caller-supplied lock (an advisory
lock on PostgreSQL, the IMMEDIATE write lock on SQLite); each transaction re-reads
the applied versions under that lock, so a second process simply finds nothing to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from . import schema
from .versions import v001_initial, v002_composition, v003_schedules

__all__ = ["MIGRATIONS", "Migration", "apply_migrations", "latest_version"]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


# Each version's DDL is frozen in its own module (`versions/`): `schema` describes the latest
# tables, and a test checks that applying every version yields exactly those.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, v001_initial.DESCRIPTION, v001_initial.apply),
    Migration(2, v002_composition.DESCRIPTION, v002_composition.apply),
    Migration(3, v003_schedules.DESCRIPTION, v003_schedules.apply),
)


def latest_version() -> int:
    """The schema version this build expects."""
    return MIGRATIONS[-1].version


def _applied(conn: Connection) -> set[int]:
    return set(conn.scalars(select(schema.schema_migrations.c.version)))


def apply_migrations(
    begin: Callable[[], AbstractContextManager[Connection]],
    lock: Callable[[Connection], None],
    *,
    migrations: tuple[Migration, ...] = MIGRATIONS,
) -> int:
    """Apply pending migrations; return the highest applied version.

    `begin` opens a write transaction; `lock` serialises migrators for that transaction.
    """
    with begin() as conn:
        lock(conn)
        schema.schema_migrations.create(conn, checkfirst=True)
        applied = _applied(conn)
    for migration in _pending(migrations, applied):
        with begin() as conn:
            lock(conn)
            if migration.version not in _applied(conn):  # else another process got here first
                migration.apply(conn)
                conn.execute(
                    insert(schema.schema_migrations).values(
                        version=migration.version, applied_at_ms=int(time.time() * 1000)
                    )
                )
        applied.add(migration.version)
    return max(applied, default=0)


def _pending(migrations: tuple[Migration, ...], applied: set[int]) -> Iterator[Migration]:
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError("migrations must have unique, increasing versions")
    return (m for m in migrations if m.version not in applied)
