"""Schedules in the client: models, operations and the methods ``Client`` and ``AsyncClient`` gain.

Kept in a module of its own (the clients take the two mixins below), so schedules and the
execution operations in ``operations.py`` grow without touching each other.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from cerebelum.jsoncodec import dumps, loads
from cerebelum.operations import Call, Operation
from cerebelum.times import instant
from cerebelum.v1 import schedule_pb2 as pb

__all__ = [
    "AsyncScheduleMethods",
    "Schedule",
    "ScheduleFire",
    "ScheduleMethods",
    "TriggeredSchedule",
    "create_schedule",
    "delete_schedule",
    "get_schedule",
    "list_schedules",
    "pause_schedule",
    "resume_schedule",
    "trigger_schedule",
    "update_schedule",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ScheduleFire:
    """One settled due time. ``outcome``: started, triggered, skipped, buffered, missed or failed;
    ``count``: missed due times of one outage are one record, the last of which is ``due``."""

    due: datetime | None
    at: datetime | None
    outcome: str
    execution_id: str
    reason: str
    count: int

    @classmethod
    def from_proto(cls, fire: pb.ScheduleFire) -> ScheduleFire:
        return cls(
            due=instant(fire, "due"),
            at=instant(fire, "at"),
            outcome=fire.outcome,
            execution_id=fire.execution_id,
            reason=fire.reason,
            count=fire.count,
        )


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule: its spec (camelCase, as written) and what it did; times are UTC."""

    name: str
    spec: dict[str, Any]
    workflow: str
    paused: bool
    note: str
    next_due: datetime | None
    next_fire: datetime | None
    last_due: datetime | None
    last_fire: datetime | None
    last_execution_id: str
    buffered_due: datetime | None
    started: int
    skipped: int
    missed: int
    failed: int
    recent: tuple[ScheduleFire, ...]
    created_at: datetime | None
    updated_at: datetime | None
    revision: int

    @classmethod
    def from_proto(cls, info: pb.ScheduleInfo) -> Schedule:
        return cls(
            name=info.name,
            spec=loads(info.spec_json) or {},
            workflow=info.workflow,
            paused=info.paused,
            note=info.note,
            next_due=instant(info, "next_due"),
            next_fire=instant(info, "next_fire"),
            last_due=instant(info, "last_due"),
            last_fire=instant(info, "last_fire"),
            last_execution_id=info.last_execution_id,
            buffered_due=instant(info, "buffered_due"),
            started=info.started,
            skipped=info.skipped,
            missed=info.missed,
            failed=info.failed,
            recent=tuple(ScheduleFire.from_proto(fire) for fire in info.recent),
            created_at=instant(info, "created_at"),
            updated_at=instant(info, "updated_at"),
            revision=info.revision,
        )


@dataclass(frozen=True, slots=True)
class TriggeredSchedule:
    schedule: Schedule
    execution_id: str


def _schedule(call: Call) -> Operation[Schedule]:
    info = yield call
    return Schedule.from_proto(info)


def create_schedule(name: str, spec: dict[str, Any]) -> Operation[Schedule]:
    return _schedule(Call("CreateSchedule", pb.CreateScheduleRequest(name=name, spec_json=dumps(spec))))


def update_schedule(name: str, spec: dict[str, Any]) -> Operation[Schedule]:
    return _schedule(Call("UpdateSchedule", pb.UpdateScheduleRequest(name=name, spec_json=dumps(spec))))


def get_schedule(name: str) -> Operation[Schedule]:
    return _schedule(Call("GetSchedule", pb.GetScheduleRequest(name=name)))


def list_schedules() -> Operation[list[Schedule]]:
    reply = yield Call("ListSchedules", pb.ListSchedulesRequest())
    return [Schedule.from_proto(info) for info in reply.schedules]


def pause_schedule(name: str, note: str = "") -> Operation[Schedule]:
    return _schedule(Call("PauseSchedule", pb.PauseScheduleRequest(name=name, note=note)))


def resume_schedule(name: str) -> Operation[Schedule]:
    return _schedule(Call("ResumeSchedule", pb.ResumeScheduleRequest(name=name)))


def trigger_schedule(name: str) -> Operation[TriggeredSchedule]:
    reply = yield Call("TriggerSchedule", pb.TriggerScheduleRequest(name=name))
    return TriggeredSchedule(Schedule.from_proto(reply.schedule), reply.execution_id)


def delete_schedule(name: str) -> Operation[bool]:
    reply = yield Call("DeleteSchedule", pb.DeleteScheduleRequest(name=name))
    return bool(reply.deleted)


class ScheduleMethods:
    """The schedule methods of ``Client`` (blocking), on its ``_run``."""

    def _run(self, operation: Operation[T]) -> T:
        raise NotImplementedError  # the client's own

    def create_schedule(self, name: str, spec: dict[str, Any]) -> Schedule:
        """A new schedule from its spec (``workflow``, ``cron`` or ``interval``, ...: docs/schedules.md);
        ``AlreadyExistsError`` when the name is taken."""
        return self._run(create_schedule(name, spec))

    def update_schedule(self, name: str, spec: dict[str, Any]) -> Schedule:
        """Replace the spec; a changed timing fires from now on."""
        return self._run(update_schedule(name, spec))

    def get_schedule(self, name: str) -> Schedule:
        return self._run(get_schedule(name))

    def list_schedules(self) -> builtins.list[Schedule]:
        return self._run(list_schedules())

    def pause_schedule(self, name: str, *, note: str = "") -> Schedule:
        return self._run(pause_schedule(name, note))

    def resume_schedule(self, name: str) -> Schedule:
        """Fire again from now on; due times that passed while paused are not caught up."""
        return self._run(resume_schedule(name))

    def trigger_schedule(self, name: str) -> TriggeredSchedule:
        """Start the schedule's workflow now, paused or not."""
        return self._run(trigger_schedule(name))

    def delete_schedule(self, name: str) -> bool:
        """Whether there was such a schedule; the executions it started go on."""
        return self._run(delete_schedule(name))


class AsyncScheduleMethods:
    """The same methods for ``AsyncClient``."""

    async def _run(self, operation: Operation[T]) -> T:
        raise NotImplementedError  # the client's own

    async def create_schedule(self, name: str, spec: dict[str, Any]) -> Schedule:
        return await self._run(create_schedule(name, spec))

    async def update_schedule(self, name: str, spec: dict[str, Any]) -> Schedule:
        return await self._run(update_schedule(name, spec))

    async def get_schedule(self, name: str) -> Schedule:
        return await self._run(get_schedule(name))

    async def list_schedules(self) -> builtins.list[Schedule]:
        return await self._run(list_schedules())

    async def pause_schedule(self, name: str, *, note: str = "") -> Schedule:
        return await self._run(pause_schedule(name, note))

    async def resume_schedule(self, name: str) -> Schedule:
        return await self._run(resume_schedule(name))

    async def trigger_schedule(self, name: str) -> TriggeredSchedule:
        return await self._run(trigger_schedule(name))

    async def delete_schedule(self, name: str) -> bool:
        return await self._run(delete_schedule(name))
