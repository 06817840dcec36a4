"""gRPC TaskQueueService: pause, resume and rate-limit task queues (privileged: closed unless granted)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cerebelum.v1 import task_queue_pb2 as pb
from cerebelum.v1 import task_queue_pb2_grpc as pb_grpc

from ..engine.rates import MAX_RATE_PERIOD_MS, RateLimit
from ..runtime import TaskQueueService, TaskQueueView
from .errors import Context, InvalidRequest, grpc_errors
from .guard import Guard
from .times import timestamp

__all__ = ["TaskQueueServicer", "task_queue_info"]

T = TypeVar("T")


def _task_queue_rpc(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Authenticate the caller and require a ``clients`` rule granting ``taskQueues`` (closed by default)."""

    @functools.wraps(method)
    async def wrapper(self: TaskQueueServicer, request: Any, context: Context) -> T:
        identity = await self.guard.identify(context)
        self.guard.policy.check_task_queues(identity, method.__name__)
        return await method(self, request, context)

    return wrapper


def task_queue_info(view: TaskQueueView) -> pb.TaskQueueInfo:
    limit = view.rate_limit
    return pb.TaskQueueInfo(
        name=view.name,
        paused=view.paused,
        note=view.note,
        rate_limit=None if limit is None else pb.RateLimit(count=limit.count, period_ms=limit.period_ms),
        updated_at=timestamp(view.updated_at_ms),
        ready=view.ready,
        scheduled=view.scheduled,
        running=view.running,
        pollers=view.pollers,
        last_poll=timestamp(view.last_poll_ms),
        waiting_reason="" if view.block is None else view.block.reason,
        waiting_until=timestamp(None if view.block is None else view.block.until_ms),
    )


def _name(request: Any, rpc: str) -> str:
    if not request.name:
        raise InvalidRequest(f"{rpc}: name is required")
    return str(request.name)


class TaskQueueServicer(pb_grpc.TaskQueueServiceServicer):
    def __init__(self, queues: TaskQueueService, *, guard: Guard | None = None) -> None:
        self.queues = queues
        self.guard = guard or Guard()

    @grpc_errors
    @_task_queue_rpc
    async def ListTaskQueues(self, request: pb.ListTaskQueuesRequest, context: Context) -> pb.ListTaskQueuesResponse:
        return pb.ListTaskQueuesResponse(task_queues=[task_queue_info(v) for v in await self.queues.list()])

    @grpc_errors
    @_task_queue_rpc
    async def PauseTaskQueue(self, request: pb.PauseTaskQueueRequest, context: Context) -> pb.TaskQueueInfo:
        return task_queue_info(await self.queues.pause(_name(request, "PauseTaskQueue"), note=request.note))

    @grpc_errors
    @_task_queue_rpc
    async def ResumeTaskQueue(self, request: pb.ResumeTaskQueueRequest, context: Context) -> pb.TaskQueueInfo:
        return task_queue_info(await self.queues.resume(_name(request, "ResumeTaskQueue")))

    @grpc_errors
    @_task_queue_rpc
    async def SetTaskQueueRateLimit(
        self, request: pb.SetTaskQueueRateLimitRequest, context: Context
    ) -> pb.TaskQueueInfo:
        name = _name(request, "SetTaskQueueRateLimit")
        limit: RateLimit | None = None
        if request.HasField("rate_limit"):
            count, period_ms = request.rate_limit.count, request.rate_limit.period_ms
            if count < 1 or not 1 <= period_ms <= MAX_RATE_PERIOD_MS:
                raise InvalidRequest(
                    f"SetTaskQueueRateLimit: a rate limit is at least 1 task per period of 1 ms to"
                    f" {MAX_RATE_PERIOD_MS} ms (a day), not {count} per {period_ms} ms"
                )
            limit = RateLimit(count, period_ms)
        return task_queue_info(await self.queues.set_rate_limit(name, limit))
