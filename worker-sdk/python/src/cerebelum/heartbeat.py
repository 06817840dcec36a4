"""Keeps one task's lease alive while its step runs, and notices cancellation and lost leases."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

import grpc

from cerebelum.context import StepContext
from cerebelum.errors import CancelReason
from cerebelum.v1 import worker_pb2

__all__ = ["DEFAULT_LEASE_MS", "HeartbeatRpc", "Heartbeater"]

log = logging.getLogger("cerebelum.worker")

DEFAULT_LEASE_MS = 30_000
"""Lease assumed when a task carries none."""

HeartbeatRpc = grpc.aio.UnaryUnaryMultiCallable[worker_pb2.HeartbeatRequest, worker_pb2.HeartbeatResponse]


class Heartbeater:
    """Sends ``Heartbeat`` for one task every ``lease_ms / 3``.

    Without ``heartbeat_required`` it beats on its own for as long as the step runs. With it,
    it only beats after the step called ``ctx.heartbeat()`` since the last beat, so a stuck step
    loses its lease. Requests from ``ctx.heartbeat()`` are sent at once when the last beat is at
    least one interval old, otherwise at the next interval. No timer, task or thread exists between
    beats other than event-loop timer handles.

    With ``heartbeat_required`` the worker also stops a step that stopped heartbeating: once
    ``lease_ms`` has passed since the step last called ``ctx.heartbeat()`` (or since the task
    arrived) with no beat in flight, the server has timed it out, so the step is cancelled with
    reason ``heartbeat_timeout`` without waiting for a beat that may never come. The clock runs
    from the step's own calls, not from answers: while the engine cannot answer (a restart, after
    which it renews every lease) a step that keeps heartbeating keeps running and the engine
    decides, as in the TypeScript SDK.
    """

    __slots__ = (
        "_auto",
        "_ctx",
        "_dirty",
        "_expires_at",
        "_expiry",
        "_inflight",
        "_interval",
        "_last_sent",
        "_lease",
        "_loop",
        "_on_cancel",
        "_rpc",
        "_stopped",
        "_timer",
        "_token",
        "_worker_id",
    )

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        rpc: HeartbeatRpc,
        task: worker_pb2.Task,
        worker_id: str,
        ctx: StepContext,
        on_cancel: Callable[[CancelReason], None],
    ) -> None:
        self._loop = loop
        self._rpc = rpc
        self._token = task.task_token
        self._worker_id = worker_id
        self._ctx = ctx
        self._on_cancel = on_cancel
        self._lease = (task.lease_ms or DEFAULT_LEASE_MS) / 1000
        self._interval = self._lease / 3
        self._auto = not task.heartbeat_required
        self._dirty = False
        self._stopped = False
        self._inflight: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._expires_at = loop.time() + self._lease
        if not self._auto:
            self._arm_expiry()
        if self._auto:
            self._last_sent = loop.time()  # the lease was granted just now
            self._timer = loop.call_at(self._last_sent + self._interval, self._fire)
        else:
            self._last_sent = -math.inf
        ctx._notify = self.request

    @property
    def interval(self) -> float:
        return self._interval

    def request(self) -> None:
        """``ctx.heartbeat()`` was called: beat now if allowed, else at the next interval."""
        if self._stopped:
            return
        self._dirty = True
        if not self._auto:
            self._expires_at = self._loop.time() + self._lease
            if self._inflight is None:
                self._arm_expiry()
        if self._inflight is not None:
            return  # rescheduled when the beat in flight finishes
        due = self._last_sent + self._interval
        if self._loop.time() >= due:
            self._cancel_timer()
            self._send()
        elif self._timer is None:
            self._timer = self._loop.call_at(due, self._fire)

    def stop(self) -> None:
        """The step is over: no more beats."""
        self._stopped = True
        self._ctx._notify = None
        self._cancel_timer()
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._inflight is not None:
            self._inflight.cancel()
            self._inflight = None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = self._loop.call_at(self._expires_at, self._expired)

    def _expired(self) -> None:
        self._expiry = None
        if self._stopped or self._inflight is not None:
            return  # a beat is on its way: its answer extends the lease or says it is lost
        self.stop()
        self._on_cancel("heartbeat_timeout")

    def _fire(self) -> None:
        self._timer = None
        if self._stopped or self._inflight is not None:
            return
        if self._auto or self._dirty:
            self._send()

    def _send(self) -> None:
        self._dirty = False
        self._last_sent = self._loop.time()
        request = worker_pb2.HeartbeatRequest(
            task_token=self._token, worker_id=self._worker_id, progress_json=self._ctx.progress_json
        )
        self._inflight = self._loop.create_task(self._beat(request))

    async def _beat(self, request: worker_pb2.HeartbeatRequest) -> None:
        try:
            reply = await self._rpc(request, timeout=max(1.0, self._interval))
        except grpc.aio.AioRpcError as exc:
            log.debug("heartbeat for %s failed: %s %s", self._ctx.step, exc.code().name, exc.details())
            reply = None
        except (grpc.aio.UsageError, RuntimeError) as exc:  # channel closed during shutdown
            log.debug("heartbeat for %s failed: %s", self._ctx.step, exc)
            reply = None
        self._inflight = None
        if self._stopped:
            return
        if reply is not None:
            if reply.lease_lost:
                self.stop()
                self._on_cancel("lease_lost")
                return
            self._expires_at = self._loop.time() + self._lease
            if reply.cancel_requested:
                self._on_cancel("cancel_requested")
        if not self._auto and not self._stopped:
            self._arm_expiry()  # from the new answer, or again if it fired while the beat was out
        if self._auto or self._dirty:
            self._timer = self._loop.call_at(self._last_sent + self._interval, self._fire)
