"""Map the engine's errors to gRPC status codes with the engine's own message."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from ..engine import CommandRejected
from ..engine.decide import CommandTooLarge
from ..model import InputInvalid, WorkflowInvalid
from ..model.limits import TextTooLong
from ..runtime import ExecutionConflict, ExecutionNotFound, ScheduleInvalid, ScheduleNotFound, WorkflowNotFound
from ..store import ConcurrencyConflict, ScheduleExists, ShardNotOwned, StoreCorrupted, StoreUnavailable
from .auth import AuthUnavailable, PermissionDenied, Unauthenticated
from .limits import check_request
from .payloads import PayloadError, PayloadTooLarge

__all__ = ["Context", "InvalidRequest", "grpc_errors", "status_code_of", "status_of"]

Context = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger(__name__)

T = TypeVar("T")


class InvalidRequest(ValueError):
    """A request missing a field or with a bad value."""


_CODES: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (AuthUnavailable, grpc.StatusCode.UNAVAILABLE),
    (PayloadTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (TextTooLong, grpc.StatusCode.INVALID_ARGUMENT),
    (PayloadError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (WorkflowInvalid, grpc.StatusCode.INVALID_ARGUMENT),
    (InputInvalid, grpc.StatusCode.INVALID_ARGUMENT),
    (ExecutionNotFound, grpc.StatusCode.NOT_FOUND),
    (WorkflowNotFound, grpc.StatusCode.NOT_FOUND),
    (ScheduleNotFound, grpc.StatusCode.NOT_FOUND),
    (ScheduleInvalid, grpc.StatusCode.INVALID_ARGUMENT),
    (ScheduleExists, grpc.StatusCode.ALREADY_EXISTS),
    (ExecutionConflict, grpc.StatusCode.ALREADY_EXISTS),
    (CommandTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (CommandRejected, grpc.StatusCode.FAILED_PRECONDITION),
    (ConcurrencyConflict, grpc.StatusCode.ABORTED),
    # The store's file is damaged: retrying cannot help, and the message names the file.
    (StoreCorrupted, grpc.StatusCode.DATA_LOSS),
    # The database is restarting: callers retry (the SDK re-submits results) instead of giving up.
    (StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    # Scale-out: the execution's shard moved to another replica as the call arrived; retried, it goes there.
    (ShardNotOwned, grpc.StatusCode.UNAVAILABLE),
]


def status_code_of(error: BaseException) -> grpc.StatusCode | None:
    """The status an error the engine explains maps to (the web UI maps it on to HTTP); None if unexpected."""
    return next((code for error_type, code in _CODES if isinstance(error, error_type)), None)


def status_of(error: Exception, rpc: str) -> tuple[grpc.StatusCode, str]:
    """The status and message `grpc_errors` would answer ``error`` with (unexpected ones logged, INTERNAL):
    for an RPC that answers each item of a batch on its own."""
    code = status_code_of(error)
    if code is not None:
        return code, str(error)
    log.error("unexpected error in %s", rpc, exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}: {error}"


def grpc_errors(
    method: Callable[..., Awaitable[T]],
) -> Callable[..., Awaitable[T]]:
    """Check the request's strings, turn known errors into statuses; hide anything unexpected as INTERNAL.

    Every RPC of both services passes here, so this is the one place string limits are applied.
    """

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: Context) -> T:
        try:
            check_request(request, method.__name__)
            return await method(self, request, context)
        except Exception as exc:
            code = status_code_of(exc)
            if code is not None:
                await context.abort(code, str(exc))
            if isinstance(exc, grpc.aio.AbortError):
                raise
            log.exception("unexpected error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
            raise  # unreachable: abort raises

    return wrapper
