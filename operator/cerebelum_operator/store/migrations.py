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

from sqlalchemy import Connection, insert, inspect, select, update

from ..engine.events import EVENT_FORMAT
from . import schema
from .base import StoreTooNew
from .versions import (
    v001_initial,
    v002_composition,
    v003_schedules,
    v004_compatibility,
    v005_retention,
    v006_flow_control,
    v007_task_queues,
    v008_labels,
    v009_shards,
    v010_rate_windows,
)

__all__ = ["MIGRATIONS", "Migration", "apply_migrations", "latest_version"]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]
    # True when engines of earlier versions can no longer run on the migrated store (a column they
    # read changed, not only tables added): the store then refuses them at start.
    breaking: bool = False


# Each version's DDL is frozen in its own module (`versions/`): `schema` describes the latest
# tables, and a test checks that applying every version yields exactly those.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, v001_initial.DESCRIPTION, v001_initial.apply),
    Migration(2, v002_composition.DESCRIPTION, v002_composition.apply),
    Migration(3, v003_schedules.DESCRIPTION, v003_schedules.apply),
    Migration(4, v004_compatibility.DESCRIPTION, v004_compatibility.apply),
    Migration(5, v005_retention.DESCRIPTION, v005_retention.apply),
    Migration(6, v006_flow_control.DESCRIPTION, v006_flow_control.apply),
    Migration(7, v007_task_queues.DESCRIPTION, v007_task_queues.apply),
    Migration(8, v008_labels.DESCRIPTION, v008_labels.apply),
    Migration(9, v009_shards.DESCRIPTION, v009_shards.apply),
    Migration(10, v010_rate_windows.DESCRIPTION, v010_rate_windows.apply),
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
        check_compatible(conn, applied, known=migrations[-1].version if migrations else 0)
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
                if migration.breaking:
                    conn.execute(
                        update(schema.store_compatibility)
                        .where(schema.store_compatibility.c.name == "schema_readable_by")
                        .values(version=migration.version)
                    )
        applied.add(migration.version)
    return max(applied, default=0)


def check_compatible(conn: Connection, applied: set[int], *, known: int, events_format: int = EVENT_FORMAT) -> None:
    """Raise `StoreTooNew` when a newer release left this store in a state this engine cannot run on.

    A schema newer than ``known`` is refused unless the release that migrated it said engines of
    ``known`` may still read it (`schema_readable_by`, raised only by a breaking migration); events
    of a format newer than this engine reads are refused whatever the schema. Stores from before
    migration 4 have no such record: nothing newer can have written them.
    """
    newest = max(applied, default=0)
    if newest < 4 and newest <= known:
        return
    if not inspect(conn).has_table(schema.store_compatibility.name):
        if newest > known:  # migrated by a newer release that keeps no record: cannot say it is safe
            raise StoreTooNew(_too_new_schema(newest, known, newest))
        return
    needs = dict(conn.execute(select(schema.store_compatibility.c.name, schema.store_compatibility.c.version)).all())
    readable_by = int(needs.get("schema_readable_by", newest))
    if newest > known and readable_by > known:
        raise StoreTooNew(_too_new_schema(newest, known, readable_by))
    written = int(needs.get("events", 1))
    if written > events_format:
        raise StoreTooNew(
            f"the store's histories hold events of format {written}, written by a newer release; this engine"
            f" reads formats up to {events_format}, so it would fail on them: run that release (or a newer one)"
            " again, or restore a backup taken before the upgrade"
        )


def _too_new_schema(newest: int, known: int, readable_by: int) -> str:
    return (
        f"the store's schema is at version {newest}, migrated by a newer release, which engines before"
        f" schema version {readable_by} cannot run on; this engine knows versions up to {known}: run that"
        " release (or a newer one) again, or restore a backup taken before the upgrade"
    )


def _pending(migrations: tuple[Migration, ...], applied: set[int]) -> Iterator[Migration]:
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError("migrations must have unique, increasing versions")
    return (m for m in migrations if m.version not in applied)
