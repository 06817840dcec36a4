"""gRPC ScheduleService: schedules for the CLI and the SDK client (dev mode; the operator adds a resource later)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cerebelum.v1 import schedule_pb2 as pb
from cerebelum.v1 import schedule_pb2_grpc as pb_grpc

from ..engine.schedules import Fire
from ..runtime import ScheduleNotFound, ScheduleService, ScheduleView
from ..runtime.schedules import parse_spec
from .errors import Context, InvalidRequest, grpc_errors
from .guard import Guard
from .payloads import dump_json, parse_json
from .times import timestamp

__all__ = ["ScheduleServicer", "schedule_info"]

T = TypeVar("T")


def _schedule_rpc(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Authenticate the caller and require a ``clients`` rule granting schedules (closed by default)."""

    @functools.wraps(method)
    async def wrapper(self: ScheduleServicer, request: Any, context: Context) -> T:
        identity = await self.guard.identify(context)
        self.guard.policy.check_schedules(identity, method.__name__)
        return await method(self, request, context)

    return wrapper


def _fire(fire: Fire) -> pb.ScheduleFire:
    return pb.ScheduleFire(
        due=timestamp(fire.due_ms),
        at=timestamp(fire.at_ms),
        outcome=fire.outcome.value,
        execution_id=fire.execution_id or "",
        reason=fire.reason,
        count=fire.count,
    )


def schedule_info(view: ScheduleView) -> pb.ScheduleInfo:
    state = view.state
    return pb.ScheduleInfo(
        name=view.key,
        spec_json=dump_json(view.spec.to_document()),
        workflow=view.spec.workflow,
        paused=view.spec.paused,
        note=view.spec.note,
        next_due=timestamp(view.next_due_ms),
        next_fire=timestamp(view.next_fire_at_ms),
        last_due=timestamp(state.last_due_ms),
        last_fire=timestamp(state.last_fire_ms),
        last_execution_id=state.running_id or "",
        buffered_due=timestamp(state.buffered_due_ms),
        started=state.started,
        skipped=state.skipped,
        missed=state.missed,
        failed=state.failed,
        recent=[_fire(fire) for fire in state.recent],
        created_at=timestamp(view.created_at_ms),
        updated_at=timestamp(view.updated_at_ms),
        revision=view.revision,
    )


class ScheduleServicer(pb_grpc.ScheduleServiceServicer):
    def __init__(self, schedules: ScheduleService, *, max_payload_bytes: int, guard: Guard | None = None) -> None:
        self.schedules = schedules
        self.guard = guard or Guard()
        self.max_payload_bytes = max_payload_bytes

    def _spec(self, request: pb.CreateScheduleRequest | pb.UpdateScheduleRequest, rpc: str) -> Any:
        if not request.name:
            raise InvalidRequest(f"{rpc}: name is required")
        document = parse_json(request.spec_json, what="schedule spec", limit=self.max_payload_bytes)
        if not isinstance(document, dict):
            raise InvalidRequest(f"{rpc}: the schedule spec must be a JSON object")
        return parse_spec(document)

    @grpc_errors
    @_schedule_rpc
    async def CreateSchedule(self, request: pb.CreateScheduleRequest, context: Context) -> pb.ScheduleInfo:
        return schedule_info(await self.schedules.create(request.name, self._spec(request, "CreateSchedule")))

    @grpc_errors
    @_schedule_rpc
    async def UpdateSchedule(self, request: pb.UpdateScheduleRequest, context: Context) -> pb.ScheduleInfo:
        return schedule_info(await self.schedules.update(request.name, self._spec(request, "UpdateSchedule")))

    @grpc_errors
    @_schedule_rpc
    async def GetSchedule(self, request: pb.GetScheduleRequest, context: Context) -> pb.ScheduleInfo:
        view = await self.schedules.get(request.name)
        if view is None:
            raise ScheduleNotFound(f"schedule {request.name!r} not found")
        return schedule_info(view)

    @grpc_errors
    @_schedule_rpc
    async def ListSchedules(self, request: pb.ListSchedulesRequest, context: Context) -> pb.ListSchedulesResponse:
        return pb.ListSchedulesResponse(schedules=[schedule_info(view) for view in await self.schedules.list()])

    @grpc_errors
    @_schedule_rpc
    async def PauseSchedule(self, request: pb.PauseScheduleRequest, context: Context) -> pb.ScheduleInfo:
        return schedule_info(await self.schedules.pause(request.name, note=request.note))

    @grpc_errors
    @_schedule_rpc
    async def ResumeSchedule(self, request: pb.ResumeScheduleRequest, context: Context) -> pb.ScheduleInfo:
        return schedule_info(await self.schedules.resume(request.name))

    @grpc_errors
    @_schedule_rpc
    async def TriggerSchedule(self, request: pb.TriggerScheduleRequest, context: Context) -> pb.TriggerScheduleResponse:
        view, execution_id = await self.schedules.trigger(request.name)
        return pb.TriggerScheduleResponse(schedule=schedule_info(view), execution_id=execution_id)

    @grpc_errors
    @_schedule_rpc
    async def DeleteSchedule(self, request: pb.DeleteScheduleRequest, context: Context) -> pb.DeleteScheduleResponse:
        return pb.DeleteScheduleResponse(deleted=await self.schedules.delete(request.name))
