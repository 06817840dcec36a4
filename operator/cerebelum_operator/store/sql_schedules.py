"""The schedules table on SQLAlchemy Core, mixed into `SqlEventStore` (kept apart: sql.py is long enough)."""

from __future__ import annotations

import abc
import json
from contextlib import AbstractContextManager
from dataclasses import fields
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, select, update
from sqlalchemy.sql.dml import Insert

from . import schema
from .base import JSON, ScheduleExists, ScheduleRow

__all__ = ["SqlSchedules"]


class SqlSchedules(abc.ABC):
    """`EventStore`'s schedule methods, on the connections and conflict-aware INSERT of the store."""

    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Connection]: ...

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Connection]: ...

    @abc.abstractmethod
    def _insert_or_ignore(self, table: Table) -> Insert: ...

    def _schedule_statements(self) -> None:
        s = schema.schedules
        self._schedule_columns = [s.c[f.name] for f in fields(ScheduleRow)]
        self._insert_schedule = self._insert_or_ignore(s).returning(s.c.key)
        self._select_schedule = select(*self._schedule_columns).where(s.c.key == bindparam("b_key"))
        self._update_schedule = (
            update(s)
            .where(s.c.key == bindparam("b_key"), s.c.revision == bindparam("b_revision"))
            .returning(*self._schedule_columns)
        )
        self._delete_schedule = delete(s).where(s.c.key == bindparam("b_key")).returning(s.c.key)

    def create_schedule(
        self, key: str, *, spec: dict[str, JSON], state: dict[str, JSON], next_fire_at_ms: int | None, now_ms: int
    ) -> ScheduleRow:
        row = {
            "key": key,
            "spec": spec,
            "state": state,
            "next_fire_at_ms": next_fire_at_ms,
            "revision": 1,
            "created_at_ms": now_ms,
            "updated_at_ms": now_ms,
        }
        with self._write() as conn:
            if conn.execute(self._insert_schedule, row).first() is None:
                raise ScheduleExists(f"schedule {key!r} already exists")
        # As stored: a JSON round trip, so what is returned equals what a read returns.
        return ScheduleRow(key, _stored(spec), _stored(state), next_fire_at_ms, 1, now_ms, now_ms)

    def update_schedule(
        self,
        key: str,
        *,
        expected_revision: int,
        state: dict[str, JSON],
        next_fire_at_ms: int | None,
        now_ms: int,
        spec: dict[str, JSON] | None = None,
    ) -> ScheduleRow | None:
        values: dict[str, Any] = {
            "b_key": key,
            "b_revision": expected_revision,
            "state": state,
            "next_fire_at_ms": next_fire_at_ms,
            "revision": expected_revision + 1,
            "updated_at_ms": now_ms,
        }
        if spec is not None:  # else the SET leaves it out: a large input is not rewritten on every fire
            values["spec"] = spec
        with self._write() as conn:
            row = conn.execute(self._update_schedule, values).first()
        return None if row is None else ScheduleRow(*row)

    def get_schedule(self, key: str) -> ScheduleRow | None:
        with self._read() as conn:
            row = conn.execute(self._select_schedule, {"b_key": key}).first()
        return None if row is None else ScheduleRow(*row)

    def list_schedules(self, *, namespace: str | None = None) -> list[ScheduleRow]:
        s = schema.schedules
        query = select(*self._schedule_columns).order_by(s.c.key)
        with self._read() as conn:
            rows = [ScheduleRow(*r) for r in conn.execute(query).all()]
        if namespace is None:
            return rows
        # Filtered here, not with LIKE: a key's namespace is what precedes its last '/'.
        return [r for r in rows if r.key.rpartition("/")[0] == namespace]

    def delete_schedule(self, key: str) -> bool:
        with self._write() as conn:
            return conn.execute(self._delete_schedule, {"b_key": key}).first() is not None


def _stored(value: dict[str, JSON]) -> dict[str, JSON]:
    loaded: dict[str, JSON] = json.loads(json.dumps(value, separators=(",", ":")))
    return loaded
