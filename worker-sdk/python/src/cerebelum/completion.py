"""Submits task outcomes until the server acknowledges them: batched with ``CompleteTasks`` (reports that
become ready while the most calls are in flight go together in the next one), or one ``CompleteTask`` each."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable

import grpc

from cerebelum.backoff import Backoff
from cerebelum.outage import Outage, describe
from cerebelum.reports import invalid_payload_report
from cerebelum.v1 import worker_pb2

__all__ = ["CompleteRpc", "CompleteTasksRpc", "Completer", "Reporter"]

log = logging.getLogger("cerebelum.worker")

CompleteRpc = grpc.aio.UnaryUnaryMultiCallable[worker_pb2.CompleteTaskRequest, worker_pb2.CompleteTaskResponse]
# The unary call, or the same carried on the work stream (`WorkStream.complete_tasks`).
CompleteTasksRpc = Callable[..., Awaitable[worker_pb2.CompleteTasksResponse]]

# Codes after which the same request is sent again (the server may not have seen it).
_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED})
# Codes that mean "this outcome's payload is unacceptable": report a failure instead.
_REFUSED = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: "PayloadTooLarge",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidOutput",
}
# A whole CompleteTasks call refused with these (its message over the server's limit, say): each of its
# reports is sent again on its own, and only then refused or not for itself.
_SPLIT = frozenset(_REFUSED)
_MAX_FALLBACK_MESSAGE = 2000
# Bounds of one CompleteTasks call: far below the server's (256 reports; a message of twice the payload
# limit plus 1 MiB, 5 MiB by default). A report alone over the bytes still goes, alone.
MAX_BATCH_REPORTS = 128
MAX_BATCH_BYTES = 4 * 1024 * 1024
# Calls in flight at once. One made a pipeline with a single stage: while its reports were decided and
# committed the worker's next reports waited, and while the worker ran the tasks that came back the
# engine had only the other workers' calls to decide (bench/analysis.md: 4 against 1, +6 % steps/s).
MAX_CALLS_IN_FLIGHT = 4
_CODES = {code.value[0]: code for code in grpc.StatusCode}
# A report waiting to go, and where its reply goes.
_Pending = tuple[worker_pb2.CompleteTaskRequest, "asyncio.Future[worker_pb2.CompleteTaskResponse]"]


def _refused(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    """A report's own error in a batched reply, as the error CompleteTask would have raised."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


class Reporter:
    """Sends reports with ``CompleteTasks``: at once while fewer than ``max_calls`` calls are in flight;
    the reports that become ready while that many are go together in the next call. So at low load a
    call carries one report (no added latency) and under load one call carries many (one round trip
    and one engine call for all), with a few calls in flight so that neither end waits for the other.

    Each report's result is its own: its reply, or the error ``CompleteTask`` would have raised for it.
    An engine that answers ``UNIMPLEMENTED`` (one older than ``CompleteTasks``) gets ``CompleteTask``
    per report from then on.
    """

    __slots__ = (
        "_batch",
        "_batched",
        "_max_bytes",
        "_max_calls",
        "_max_reports",
        "_pumps",
        "_queue",
        "_single",
        "_timeout",
    )

    def __init__(
        self,
        batch: CompleteTasksRpc,
        single: CompleteRpc,
        *,
        timeout: float = 10.0,
        max_reports: int = MAX_BATCH_REPORTS,
        max_bytes: int = MAX_BATCH_BYTES,
        max_calls: int = MAX_CALLS_IN_FLIGHT,
    ) -> None:
        if max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        self._batch = batch
        self._single = single
        self._timeout = timeout
        self._max_reports = max_reports
        self._max_bytes = max_bytes
        self._max_calls = max_calls
        self._batched = True
        self._queue: deque[_Pending] = deque()
        self._pumps: set[asyncio.Task[None]] = set()  # each sends one call at a time while reports wait

    @property
    def waiting(self) -> int:
        """Reports queued behind the calls in flight, not sent yet."""
        return len(self._queue)

    @property
    def calls_in_flight(self) -> int:
        return len(self._pumps)

    @property
    def batched(self) -> bool:
        """False once the engine said it has no ``CompleteTasks``."""
        return self._batched

    async def send(self, request: worker_pb2.CompleteTaskRequest) -> worker_pb2.CompleteTaskResponse:
        """The reply to ``request``; raises ``grpc.aio.AioRpcError`` as ``CompleteTask`` would."""
        if not self._batched:
            return await self._single(request, timeout=self._timeout)
        future: asyncio.Future[worker_pb2.CompleteTaskResponse] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if len(self._pumps) < self._max_calls:
            self._pumps.add(asyncio.get_running_loop().create_task(self._send_all()))
        return await future  # cancelled: its report is dropped from the queue, or its reply ignored

    async def _send_all(self) -> None:
        try:
            while self._queue:
                await self._send(self._next_batch())
        finally:
            # Here, not in a done callback: a report queued between this loop's end and a callback
            # would find every place taken and wait for a call that never comes.
            current = asyncio.current_task()
            assert current is not None
            self._pumps.discard(current)

    def _next_batch(self) -> list[_Pending]:
        """The reports waiting, in order, up to the bounds (at least one, if any is still wanted)."""
        batch: list[_Pending] = []
        size = 0
        while self._queue and len(batch) < self._max_reports:
            request, future = self._queue[0]
            if future.done():  # its caller gave up
                self._queue.popleft()
                continue
            weight = request.ByteSize() + 8
            if batch and size + weight > self._max_bytes:
                break
            batch.append(self._queue.popleft())
            size += weight
        return batch

    async def _send(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        request = worker_pb2.CompleteTasksRequest(reports=[report for report, _ in batch])
        try:
            response = await self._batch(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNIMPLEMENTED and self._batched:  # once, though every call in flight hears it
                log.info("the engine has no CompleteTasks (an older version): reporting each outcome on its own")
                self._batched = False
            if code == grpc.StatusCode.UNIMPLEMENTED or (code in _SPLIT and len(batch) > 1):
                self._alone(batch)
                if not self._batched:
                    self._alone(list(self._queue))
                    self._queue.clear()
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException as exc:  # the worker is stopping (cancelled, a closed channel), or a bug
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)  # its caller learns it; the reports after it still go
                else:
                    future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        results = response.results
        if len(results) != len(batch):  # not an engine of this protocol: each report's caller retries
            error = _refused(
                grpc.StatusCode.UNAVAILABLE, f"CompleteTasks answered {len(results)} results for {len(batch)} reports"
            )
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if result.HasField("reply"):
                future.set_result(result.reply)
            else:
                code = _CODES.get(result.error.code, grpc.StatusCode.UNKNOWN)
                future.set_exception(_refused(code, result.error.message))

    def _alone(self, batch: list[_Pending]) -> None:
        """Each report with ``CompleteTask``, its caller answered by that call."""
        loop = asyncio.get_running_loop()
        for request, future in batch:
            if not future.done():
                call = loop.create_task(self._one(request))
                call.add_done_callback(functools.partial(_settle, future))

    async def _one(self, request: worker_pb2.CompleteTaskRequest) -> worker_pb2.CompleteTaskResponse:
        return await self._single(request, timeout=self._timeout)


def _settle(
    future: asyncio.Future[worker_pb2.CompleteTaskResponse], call: asyncio.Task[worker_pb2.CompleteTaskResponse]
) -> None:
    if future.done():
        if not call.cancelled():
            call.exception()  # retrieved: its caller is gone
        return
    if call.cancelled():
        future.cancel()
    elif (exc := call.exception()) is not None:
        future.set_exception(exc)
    else:
        future.set_result(call.result())


class Completer:
    """Sends one ``CompleteTaskRequest`` (through the ``Reporter``, batched with others) until it is acknowledged.

    ACCEPTED, DUPLICATE and STALE all count as acknowledged. Transient errors are retried with
    jittered backoff (random delays below 0.1 s, the bound doubling to 5 s) without limit, each
    new kind of error logged once; the caller cancels to give up. An outcome
    refused as too large or invalid is replaced by a non-retryable failure carrying the
    server's message.
    """

    __slots__ = ("_reporter",)

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter

    async def submit(self, request: worker_pb2.CompleteTaskRequest) -> worker_pb2.CompleteTaskResponse | None:
        """Returns the acknowledgement, or ``None`` when the server refused the report for good."""
        backoff = Backoff()
        outage = Outage()
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await self._reporter.send(request)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code in _TRANSIENT:
                    if outage.failed(exc, loop.time()):
                        log.warning("cannot report %s (%s); retrying", _what(request), describe(exc))
                    await asyncio.sleep(backoff.next())
                    continue
                replacement = self._replacement(request, code, exc.details() or "")
                if replacement is None:
                    log.error("the server refused the report of %s: %s %s", _what(request), code.name, exc.details())
                    return None
                log.warning("the server refused %s (%s); reporting a failure instead", _what(request), code.name)
                request = replacement

    @staticmethod
    def _replacement(
        request: worker_pb2.CompleteTaskRequest, code: grpc.StatusCode, details: str
    ) -> worker_pb2.CompleteTaskRequest | None:
        kind = _REFUSED.get(code)
        if kind is None:
            return None
        if request.HasField("workflow_continuation"):  # the code's commands, maybe: the step's result alone
            plain = worker_pb2.CompleteTaskRequest()
            plain.CopyFrom(request)
            plain.ClearField("workflow_continuation")
            return plain
        outcome = request.WhichOneof("outcome")
        if outcome in ("success", "sleep", "approval"):
            return invalid_payload_report(request, kind, details or f"the server refused the step's {outcome}")
        failure = request.failure
        if outcome == "failure" and (failure.stacktrace or len(failure.message) > _MAX_FALLBACK_MESSAGE):
            trimmed = worker_pb2.CompleteTaskRequest()
            trimmed.CopyFrom(request)
            trimmed.failure.stacktrace = ""
            trimmed.failure.message = request.failure.message[:_MAX_FALLBACK_MESSAGE]
            return trimmed
        return None


def _what(request: worker_pb2.CompleteTaskRequest) -> str:
    return f"the {request.WhichOneof('outcome')} of task {request.task_token[:16]}"
