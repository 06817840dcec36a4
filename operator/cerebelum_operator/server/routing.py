"""Calls for an execution of another replica's shard go to that replica (scale-out).

A replica that owns only some shards (`runtime.ShardHost`) serves every client: a call naming an
execution of a shard it does not own is sent on, as it came (its bytes and the caller's
credentials, which the owner checks again), to the owner recorded in the store's ``shard_owners``,
and the owner's answer comes back. Reads go to the owner too: it alone holds the execution in
memory (what `WaitExecution` waits on), so a client sees the same thing whichever replica it
reached. A call that was forwarded once is never forwarded again: if the owner moved meanwhile,
the engine's fence refuses it and the caller gets UNAVAILABLE, to retry (`ShardNotOwned`).

A start without an id is given one in a shard this replica owns, so it needs no hop at all.

Why forward rather than tell the client where to go: every SDK, the CLI and the web UI keep
working unchanged against any replica, and the hop costs one round trip on the rare call that
lands on the wrong replica (workers report to the replica that gave them the task: its owner).
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from ..engine.ids import TaskToken, parse_dead_letter_id
from ..model.shards import shard_of
from ..runtime import Clock, EngineService

__all__ = [
    "COMPLETE_TASK",
    "COMPLETE_TASKS",
    "FORWARDED_HEADER",
    "LIST_TASK_QUEUES",
    "START_EXECUTION",
    "Router",
    "ShardUnowned",
    "Target",
    "report_target",
    "target_of",
]

log = logging.getLogger(__name__)

FORWARDED_HEADER = "cerebelum-forwarded-by"
_PASSED_ON = frozenset({"authorization"})  # the caller's credentials, checked again by the owner
_SHARDS_KEPT = 100_000  # execution -> shard entries remembered (a shard never changes)
_OWNERS_FRESH_MS = 1_000  # how long a read of shard_owners is trusted before a miss reads it again


@dataclass(frozen=True, slots=True)
class Target:
    """The execution a call is about; ``new``: it may not exist yet (placed by its id). ``shard``: a
    call about no execution that one shard's owner answers (schedules: shard 0's)."""

    execution_id: str
    new: bool = False
    shard: int | None = None


_SCHEDULES = Target("", shard=0)  # schedules fire on the owner of shard 0: their calls go there


def _by_id(request: Any) -> Target | None:
    return Target(request.id) if request.id else None


def _by_token(request: Any) -> Target | None:
    try:
        return Target(TaskToken.parse(request.task_token).execution_id)
    except ValueError:
        return None  # the servicer answers a bad token with its own error


def report_target(report: Any) -> Target | None:
    """The execution one report of a CompleteTasks call is about."""
    return _by_token(report)


def _by_dead_letter(request: Any) -> Target | None:
    try:
        return Target(parse_dead_letter_id(request.id).execution_id)
    except ValueError:
        return None


def _new(request: Any) -> Target | None:
    return Target(request.execution_id, new=True) if request.execution_id else None


START_EXECUTION = "/cerebelum.v1.WorkflowService/StartExecution"
COMPLETE_TASK = "/cerebelum.v1.WorkerService/CompleteTask"
COMPLETE_TASKS = "/cerebelum.v1.WorkerService/CompleteTasks"
_ROUTES: dict[str, Callable[[Any], Target | None]] = {
    START_EXECUTION: _new,
    "/cerebelum.v1.WorkflowService/SignalWithStart": _new,
    "/cerebelum.v1.WorkflowService/GetExecution": _by_id,
    "/cerebelum.v1.WorkflowService/GetHistory": _by_id,
    "/cerebelum.v1.WorkflowService/WaitExecution": _by_id,
    "/cerebelum.v1.WorkflowService/Approve": _by_id,
    "/cerebelum.v1.WorkflowService/Reject": _by_id,
    "/cerebelum.v1.WorkflowService/SignalExecution": _by_id,
    "/cerebelum.v1.WorkflowService/CancelExecution": _by_id,
    "/cerebelum.v1.WorkflowService/PauseExecution": _by_id,
    "/cerebelum.v1.WorkflowService/ResumeExecution": _by_id,
    "/cerebelum.v1.WorkflowService/ResetExecution": _by_id,
    "/cerebelum.v1.WorkflowService/RedriveDeadLetter": _by_dead_letter,
    COMPLETE_TASK: _by_token,
    "/cerebelum.v1.WorkerService/Heartbeat": _by_token,
    "/cerebelum.v1.WorkerService/GetWorkflowHistory": _by_token,
    **{
        f"/cerebelum.v1.ScheduleService/{name}": lambda request: _SCHEDULES
        for name in (
            "CreateSchedule",
            "UpdateSchedule",
            "GetSchedule",
            "ListSchedules",
            "PauseSchedule",
            "ResumeSchedule",
            "TriggerSchedule",
            "DeleteSchedule",
        )
    },
}

BULK_EXECUTIONS = "/cerebelum.v1.WorkflowService/BulkExecutions"
# What each engine of a split answers for its own shards, added up by the engine called.
LIST_TASK_QUEUES = "/cerebelum.v1.TaskQueueService/ListTaskQueues"
# What every engine applies when engines split the shards: the one called does, then sends the call
# on to each other engine (`Router.peers`), which applies it as its own (a workflow's resume: each
# engine resumes the executions of its shards). An engine it does not reach reads the setting from
# the store within seconds all the same (`EngineServer._shared_settings`).
BROADCAST: frozenset[str] = frozenset(
    {
        "/cerebelum.v1.TaskQueueService/PauseTaskQueue",
        "/cerebelum.v1.TaskQueueService/ResumeTaskQueue",
        "/cerebelum.v1.TaskQueueService/SetTaskQueueRateLimit",  # counted in the store (`RateLimitReached`)
        "/cerebelum.v1.WorkflowService/PauseWorkflow",
        "/cerebelum.v1.WorkflowService/ResumeWorkflow",
    }
)


def target_of(method: str, request: Any) -> Target | None:
    """The execution a call of ``method`` is about; None for calls any replica answers itself."""
    route = _ROUTES.get(method)
    return None if route is None else route(request)


class Router:
    """Which replica owns an execution, and the channels to the other replicas.

    ``owned`` says the shards this replica owns now (None: every shard, and nothing is routed).
    ``channel_to`` opens a channel to another replica's address (TLS as this server's clients use).
    """

    def __init__(
        self,
        engine: EngineService,
        *,
        clock: Clock,
        owned: Callable[[], Mapping[int, int] | None],
        channel_to: Callable[[str], grpc.aio.Channel],
        name: str,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.owned = owned
        self.channel_to = channel_to
        self.name = name
        self._shards: OrderedDict[str, int] = OrderedDict()
        self._owners: dict[int, str | None] = {}
        self._owners_read_at_ms = -_OWNERS_FRESH_MS
        self._channels: dict[str, grpc.aio.Channel] = {}
        self.forwarded = 0  # calls sent on to another replica, for tests and metrics

    def new_execution_id(self) -> str:
        """An id for a start that named none, in a shard this replica owns: the start stays here."""
        owned = self.owned()
        count = self.engine.shard_count()
        while True:
            candidate = uuid.uuid4().hex[:20]
            if owned is None or shard_of(candidate, shards=count) in owned:
                return candidate

    async def owner_of(self, target: Target) -> str | None:
        """The address of the replica to send the call to; None: answer it here."""
        owned = self.owned()
        if owned is None:
            return None
        shard = target.shard if target.shard is not None else await self._shard_of(target)
        if shard is None or shard in owned:
            return None  # not there (the servicer says so), or ours
        address = await self._owner_address(shard)
        if address is None:
            raise ShardUnowned(f"shard {shard} of execution {target.execution_id!r} has no owner right now; retry")
        return address

    async def peers(self) -> list[str]:
        """The addresses of the other engines that own shards now (read afresh from the store)."""
        owned = self.owned() or {}
        rows = await self.engine.shard_owners()
        self._owners = {row.shard: row.address if row.owner is not None else None for row in rows}
        self._owners_read_at_ms = self.clock.now_ms()
        mine = {self._owners.get(shard) for shard in owned}
        return sorted({address for address in self._owners.values() if address is not None} - mine)

    async def forward(
        self, address: str, method: str, raw: bytes, context: grpc.aio.ServicerContext[Any, Any], response: Any
    ) -> Any:
        """Send the call on as it came and return the owner's answer (its errors too, as they came)."""
        try:
            return await self.call(address, method, raw, context, response)
        except grpc.aio.AioRpcError as error:
            await context.abort(error.code(), error.details() or "")
            raise  # abort raises; this only tells the type checker

    async def call(
        self, address: str, method: str, raw: bytes, context: grpc.aio.ServicerContext[Any, Any], response: Any
    ) -> Any:
        """The owner's answer to ``raw`` sent as ``method`` with the caller's credentials; its error raised."""
        metadata = [(key, value) for key, value in (context.invocation_metadata() or ()) if key in _PASSED_ON]
        metadata.append((FORWARDED_HEADER, self.name))
        call = self._channel(address).unary_unary(
            method, request_serializer=None, response_deserializer=response.FromString
        )
        self.forwarded += 1
        try:
            return await call(raw, metadata=metadata, timeout=context.time_remaining())
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                self._owners_read_at_ms = -_OWNERS_FRESH_MS  # the owner may have moved: read again next time
            raise

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(grace=None)
        self._channels.clear()

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = self.channel_to(address)
        return channel

    async def _shard_of(self, target: Target) -> int | None:
        shard = self._shards.get(target.execution_id)
        if shard is not None:
            self._shards.move_to_end(target.execution_id)
            return shard
        shard = await self.engine.shard_of_execution(target.execution_id)
        if shard is None:
            if not target.new:
                return None
            shard = shard_of(target.execution_id, shards=self.engine.shard_count())
        else:
            self._shards[target.execution_id] = shard
            if len(self._shards) > _SHARDS_KEPT:
                self._shards.popitem(last=False)
        return shard

    async def _owner_address(self, shard: int) -> str | None:
        now = self.clock.now_ms()
        if shard not in self._owners or now - self._owners_read_at_ms >= _OWNERS_FRESH_MS:
            rows = await self.engine.shard_owners()
            self._owners = {row.shard: row.address if row.owner is not None else None for row in rows}
            self._owners_read_at_ms = now
        return self._owners.get(shard)


class ShardUnowned(Exception):
    """No replica owns the shard at this moment (one is taking it over): UNAVAILABLE, retry."""
