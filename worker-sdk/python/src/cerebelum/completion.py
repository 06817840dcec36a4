"""Submits task outcomes with ``CompleteTask`` until the server acknowledges them."""

from __future__ import annotations

import asyncio
import logging

import grpc

from cerebelum.backoff import Backoff
from cerebelum.outage import Outage, describe
from cerebelum.reports import invalid_payload_report
from cerebelum.v1 import worker_pb2

__all__ = ["CompleteRpc", "Completer"]

log = logging.getLogger("cerebelum.worker")

CompleteRpc = grpc.aio.UnaryUnaryMultiCallable[worker_pb2.CompleteTaskRequest, worker_pb2.CompleteTaskResponse]

# Codes after which the same request is sent again (the server may not have seen it).
_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED})
# Codes that mean "this outcome's payload is unacceptable": report a failure instead.
_REFUSED = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: "PayloadTooLarge",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidOutput",
}
_MAX_FALLBACK_MESSAGE = 2000


class Completer:
    """Sends one ``CompleteTaskRequest`` until it is acknowledged.

    ACCEPTED, DUPLICATE and STALE all count as acknowledged. Transient errors are retried with
    jittered backoff (random delays below 0.1 s, the bound doubling to 5 s) without limit, each
    new kind of error logged once; the caller cancels to give up. An outcome
    refused as too large or invalid is replaced by a non-retryable failure carrying the
    server's message.
    """

    __slots__ = ("_rpc", "_timeout")

    def __init__(self, rpc: CompleteRpc, *, timeout: float = 10.0) -> None:
        self._rpc = rpc
        self._timeout = timeout

    async def submit(self, request: worker_pb2.CompleteTaskRequest) -> worker_pb2.CompleteTaskResponse | None:
        """Returns the acknowledgement, or ``None`` when the server refused the report for good."""
        backoff = Backoff()
        outage = Outage()
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await self._rpc(request, timeout=self._timeout)
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
