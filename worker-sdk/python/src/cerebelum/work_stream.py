"""A worker's polls and reports to one engine, on one ``Work`` stream instead of a gRPC call each.

A unary call costs both ends more than the message it carries (a new HTTP/2 stream, its metadata
and status, a task on the engine): a message on an open stream costs about a third of it. Each
``PollTask`` or ``CompleteTasks`` becomes a ``WorkCall`` with an id; the engine runs it as the RPC
and answers with a ``WorkAnswer`` of that id. Callers see what the unary call would have given:
its reply, or a ``grpc.aio.AioRpcError`` with its code. A report written after a poll of its queue
on the same stream asks for its next task with ``stream_steps`` instead of the step names again.

The stream opens on the first call and again after it ends (every call open on it then fails with
UNAVAILABLE, and its caller retries as after a lost connection). A call's ``timeout`` travels with
it; a call given up (timed out or cancelled) is cancelled on the engine too, so a poll nobody
waits for leases no task. An engine that predates ``Work`` answers UNIMPLEMENTED: the unary calls
are made from then on.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from cerebelum.v1 import worker_pb2

__all__ = ["WorkStream"]

log = logging.getLogger("cerebelum.worker")

R = TypeVar("R", bound=Message)

_CODES = {code.value[0]: code for code in grpc.StatusCode}
# The engine's own timeout for a call is a little later than the caller's, which then decides.
_ENGINE_MARGIN_S = 1.0


def _refer_to_polled_steps(request: worker_pb2.CompleteTasksRequest, polled: set[str]) -> None:
    """Each report's ``poll_next`` of a queue this stream polled names no steps: the engine takes the
    ones that poll sent (``stream_steps``), so a worker with many steps does not send them every time."""
    for report in request.reports:
        if report.HasField("poll_next") and report.poll_next.task_queue in polled and report.poll_next.steps:
            del report.poll_next.steps[:]
            report.poll_next.stream_steps = True


def _error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


class _Unsupported(Exception):
    """The engine has no ``Work``: the call is made as a unary call instead."""


class _Open:
    """One open stream, and the calls waiting for their answers on it."""

    __slots__ = ("call", "metadata", "polled", "reader", "waiting")

    def __init__(
        self, call: grpc.aio.StreamStreamCall[worker_pb2.WorkCall, worker_pb2.WorkAnswer], metadata: tuple[Any, ...]
    ) -> None:
        self.call = call
        self.metadata = metadata
        self.waiting: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.polled: set[str] = set()  # task queues polled (with their steps) on this stream


class WorkStream:
    """``poll`` and ``complete_tasks``, called as the unary multi-callables are, carried on one stream.

    The stream's token is the one it opened with: when the token source gives another (a projected
    token renewed), the next call opens a new stream, and the old one ends once its calls are answered.
    """

    def __init__(
        self,
        open_stream: grpc.aio.StreamStreamMultiCallable[worker_pb2.WorkCall, worker_pb2.WorkAnswer],
        *,
        poll: Any,
        complete_tasks: Any,
        metadata: Callable[[], Sequence[tuple[str, str]]] = tuple,
    ) -> None:
        self._open_stream = open_stream
        self._unary = {"poll_task": poll, "complete_tasks": complete_tasks}
        self._metadata = metadata
        self._current: _Open | None = None
        self._streams: set[_Open] = set()  # the current one, and old ones still answering
        self._ids = itertools.count(1)
        self._writing = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self.streamed = True  # False once the engine said it has no Work

    @property
    def opened(self) -> int:
        """Streams open now: the current one, and old ones still answering calls."""
        return len(self._streams)

    async def poll(
        self,
        request: worker_pb2.PollTaskRequest,
        *,
        timeout: float | None = None,  # noqa: ASYNC109  (as the unary call's)
    ) -> worker_pb2.PollTaskResponse:
        reply: worker_pb2.PollTaskResponse = await self._invoke("poll_task", request, timeout)
        return reply

    async def complete_tasks(
        self,
        request: worker_pb2.CompleteTasksRequest,
        *,
        timeout: float | None = None,  # noqa: ASYNC109  (as the unary call's)
    ) -> worker_pb2.CompleteTasksResponse:
        reply: worker_pb2.CompleteTasksResponse = await self._invoke("complete_tasks", request, timeout)
        return reply

    async def close(self) -> None:
        """End every stream (their open calls fail with UNAVAILABLE) and wait for their readers."""
        self._current = None
        streams = list(self._streams)
        for stream in streams:
            stream.call.cancel()
        await asyncio.gather(*(s.reader for s in streams if s.reader is not None), return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _invoke(self, kind: str, request: Any, timeout: float | None) -> Any:  # noqa: ASYNC109
        if self.streamed:
            try:
                return await self._streamed(kind, request, timeout)
            except _Unsupported:
                pass
        return await self._unary[kind](request, timeout=timeout)

    async def _streamed(self, kind: str, request: Any, timeout: float | None) -> Any:  # noqa: ASYNC109
        stream = self._open()
        id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        stream.waiting[id] = (kind, future)
        timeout_ms = 0 if timeout is None else round((timeout + _ENGINE_MARGIN_S) * 1000)
        message = worker_pb2.WorkCall(id=id, timeout_ms=timeout_ms)
        getattr(message, kind).CopyFrom(request)
        try:
            try:
                async with self._writing:  # the order written: a report after a poll may refer to its steps
                    if kind == "complete_tasks" and stream.polled:
                        _refer_to_polled_steps(message.complete_tasks, stream.polled)
                    await stream.call.write(message)
                    if kind == "poll_task" and request.steps:
                        stream.polled.add(request.task_queue)
            except Exception as exc:  # the stream ended under us: its reader fails the calls on it
                if not future.done():
                    stream.waiting.pop(id, None)
                    raise _error(grpc.StatusCode.UNAVAILABLE, f"the work stream ended: {exc}") from exc
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            self._give_up(stream, id)
            raise _error(grpc.StatusCode.DEADLINE_EXCEEDED, "no answer on the work stream in time") from None
        except asyncio.CancelledError:
            self._give_up(stream, id)
            raise

    def _give_up(self, stream: _Open, id: int) -> None:
        """The caller no longer waits: tell the engine, so that a poll leases nothing for nobody."""
        if stream.waiting.pop(id, None) is None or stream not in self._streams:
            return
        self._later(self._write(stream, worker_pb2.WorkCall(id=id, cancel=True)))

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write(self, stream: _Open, message: worker_pb2.WorkCall | None) -> None:
        """`message`, or the end of this side of the stream (None); nothing if the stream ended."""
        try:
            async with self._writing:
                if message is None:
                    await stream.call.done_writing()
                else:
                    await stream.call.write(message)
        except Exception:  # the stream ended: the engine stopped its calls with it
            return

    def _open(self) -> _Open:
        metadata = tuple(self._metadata())
        current = self._current
        if current is not None and current.metadata == metadata:
            return current
        if current is not None:  # a new token: the old stream answers what it holds, then ends
            self._later(self._write(current, None))
        call = self._open_stream(None, metadata=grpc.aio.Metadata(*metadata))
        stream = self._current = _Open(call, metadata)
        self._streams.add(stream)
        stream.reader = asyncio.get_running_loop().create_task(self._read(stream))
        return stream

    async def _read(self, stream: _Open) -> None:
        ended: BaseException
        try:
            async for answer in stream.call:
                waiting = stream.waiting.pop(answer.id, None)
                if waiting is None:  # given up meanwhile
                    continue
                kind, future = waiting
                if future.done():
                    continue
                if answer.HasField("error"):
                    code = _CODES.get(answer.error.code, grpc.StatusCode.UNKNOWN)
                    future.set_exception(_error(code, answer.error.message))
                else:
                    future.set_result(getattr(answer, kind))
            ended = _error(grpc.StatusCode.UNAVAILABLE, "the engine ended the work stream")
        except grpc.aio.AioRpcError as exc:
            ended = exc
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                log.info("the engine has no Work stream (an older version): polling and reporting with unary calls")
                self.streamed = False
                ended = _Unsupported()
            elif exc.code() == grpc.StatusCode.CANCELLED:
                ended = _error(grpc.StatusCode.UNAVAILABLE, "the work stream was closed")
        except asyncio.CancelledError:
            ended = _error(grpc.StatusCode.UNAVAILABLE, "the work stream was closed")
        finally:
            self._streams.discard(stream)
            if self._current is stream:
                self._current = None
        for _, future in stream.waiting.values():
            if not future.done():
                future.set_exception(ended)
        stream.waiting.clear()
