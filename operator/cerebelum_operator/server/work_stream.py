"""Serves `WorkerService.Work`: a worker's polls and reports on one stream, each handled as its unary RPC.

grpcio's asyncio server spends more on a unary call (a new HTTP/2 stream, a task, metadata both
ways, a status) than on anything else a step costs the engine at low load; a message on a stream
that is already open costs it about a third of that (`docs/architecture.md`, "One stream per
worker"). So a worker keeps one `Work` stream per engine and sends its `PollTask` and
`CompleteTasks` calls on it. Each call runs exactly the code of its RPC (`Serve`: the same
decoding-free entry the unary handler uses, routing and forwarding included), with a context that
carries the stream's metadata and the call's own deadline, and whose `abort` ends that call only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError

from cerebelum.v1 import worker_pb2 as pb

from ..api.stream_steps import StreamSteps

__all__ = ["DEFAULT_CALLS_PER_STREAM", "WORK", "CallAborted", "Serve", "WorkStreams"]

log = logging.getLogger(__name__)

WORK = "Work"
# Calls of one stream open at once, counting those answered but not yet sent: as many as unary calls
# on one connection (the server's `max_concurrent_streams` is passed in its place). Past it the
# stream is not read until an answer goes, so a worker that sends without reading holds no more.
DEFAULT_CALLS_PER_STREAM = 1_000
# A call's own timeout is capped: a poll waits at most its wait_ms (capped by the dispatcher), and
# no report takes minutes.
MAX_CALL_TIMEOUT_MS = 10 * 60 * 1000

Serve = Callable[[Any, bytes | None, "grpc.aio.ServicerContext[Any, Any]"], Awaitable[Any]]


class CallAborted(grpc.aio.AbortError):
    """`abort` on one call of a stream: that call's answer carries the status; the stream goes on."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _CallContext:
    """What the servicers use of a `ServicerContext`, for one call of a stream."""

    __slots__ = ("_deadline", "_loop", "_stream", "stream_steps")

    def __init__(
        self, stream: grpc.aio.ServicerContext[Any, Any], deadline: float | None, stream_steps: StreamSteps
    ) -> None:
        self._stream = stream
        self._deadline = deadline
        self._loop = asyncio.get_running_loop()
        self.stream_steps = stream_steps  # the stream's polled steps, for its reports (`api.stream_steps`)

    def invocation_metadata(self) -> Any:
        return self._stream.invocation_metadata()

    def time_remaining(self) -> float | None:
        stream = self._stream.time_remaining()
        if self._deadline is None:
            return stream
        own = max(0.0, self._deadline - self._loop.time())
        return own if stream is None else min(own, stream)

    def peer(self) -> str:
        return self._stream.peer()

    def auth_context(self) -> Any:
        return self._stream.auth_context()

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        raise CallAborted(code, details)


class WorkStreams:
    """The `Work` method: reads a stream's calls, runs each as its own task, answers each as it ends."""

    def __init__(self, *, poll_task: Serve, complete_tasks: Serve, max_calls: int = DEFAULT_CALLS_PER_STREAM) -> None:
        if max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        self._serve = {"poll_task": poll_task, "complete_tasks": complete_tasks}
        self.max_calls = max_calls

    async def serve(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.WorkAnswer]:
        stream = _Stream(self._serve, context, self.max_calls)
        reader = asyncio.get_running_loop().create_task(stream.read(requests))
        try:
            while True:
                answer = await stream.answers.get()
                if answer is None:
                    break
                yield answer
                stream.sent()
            if stream.refused is not None:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, stream.refused)
        finally:
            reader.cancel()
            stream.cancel_all()


class _Stream:
    """One open `Work` stream: its calls in flight, and the answers waiting to be sent."""

    def __init__(self, serve: dict[str, Serve], context: grpc.aio.ServicerContext[Any, Any], max_calls: int) -> None:
        self._serve = serve
        self._context = context
        self._slots = asyncio.Semaphore(max_calls)
        self._calls: dict[int, asyncio.Task[pb.WorkAnswer]] = {}
        self._reading = True
        self.answers: asyncio.Queue[pb.WorkAnswer | None] = asyncio.Queue()
        self.refused: str | None = None  # why the stream ends: a message that is not a WorkCall
        self.steps: StreamSteps = {}  # what its polls sent, for its reports' poll_next.stream_steps

    async def read(self, requests: AsyncIterator[bytes]) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for raw in requests:
                try:
                    call = pb.WorkCall.FromString(raw)
                except DecodeError as exc:
                    self.refused = f"a message on the Work stream is not a valid cerebelum.v1.WorkCall: {exc}"
                    return
                kind = call.WhichOneof("call")
                if kind == "cancel":
                    running = self._calls.pop(call.id, None)
                    if running is not None:
                        running.cancel()  # its poll gives its place back, as a cancelled PollTask does
                    continue
                await self._slots.acquire()  # given back once its answer is sent
                if kind is None or call.id in self._calls:
                    problem = "carries no call" if kind is None else "has the id of a call still open"
                    self.answers.put_nowait(_error(call.id, grpc.StatusCode.INVALID_ARGUMENT, f"WorkCall {problem}"))
                    continue
                task = loop.create_task(self._run(call, kind))
                self._calls[call.id] = task
                task.add_done_callback(functools.partial(self._ended, call.id))
        finally:
            self._reading = False
            self._maybe_finished()

    async def _run(self, call: pb.WorkCall, kind: str) -> pb.WorkAnswer:
        timeout_ms = min(call.timeout_ms, MAX_CALL_TIMEOUT_MS)
        deadline = asyncio.get_running_loop().time() + timeout_ms / 1000 if timeout_ms else None
        answer = pb.WorkAnswer(id=call.id)
        try:
            async with asyncio.timeout_at(deadline):
                # The part of a ServicerContext the servicers use, and the stream's polled steps.
                context: Any = _CallContext(self._context, deadline, self.steps)
                reply = await self._serve[kind](getattr(call, kind), None, context)
        except CallAborted as aborted:
            return _error(call.id, aborted.code, aborted.details)
        except TimeoutError:
            return _error(call.id, grpc.StatusCode.DEADLINE_EXCEEDED, f"the call ran past its {timeout_ms} ms")
        except Exception as exc:  # the servicers turn what they expect into statuses: this is a bug
            log.exception("a %s call of a Work stream failed", kind)
            return _error(call.id, grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
        getattr(answer, kind).CopyFrom(reply)
        return answer

    def _ended(self, id: int, task: asyncio.Task[pb.WorkAnswer]) -> None:
        if self._calls.get(id) is task:
            del self._calls[id]
        if task.cancelled():  # the worker gave it up, or the stream is ending: no answer to send
            self._slots.release()
        else:
            self.answers.put_nowait(task.result())
        self._maybe_finished()

    def sent(self) -> None:
        """An answer went: its call's place is free."""
        self._slots.release()

    def _maybe_finished(self) -> None:
        if not self._reading and not self._calls:
            self.answers.put_nowait(None)

    def cancel_all(self) -> None:
        for task in self._calls.values():
            task.cancel()
        self._calls.clear()


def _error(id: int, code: grpc.StatusCode, message: str) -> pb.WorkAnswer:
    return pb.WorkAnswer(id=id, error=pb.ReportError(code=code.value[0], message=message))
