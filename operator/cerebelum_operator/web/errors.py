"""The engine's errors as HTTP statuses, with the engine's own message (what gRPC callers see)."""

from __future__ import annotations

from ..api.auth import AuthUnavailable, PermissionDenied, Unauthenticated
from ..api.errors import InvalidRequest
from ..api.payloads import PayloadError, PayloadTooLarge
from ..engine import CommandRejected
from ..engine.decide import CommandTooLarge
from ..model import InputInvalid, WorkflowInvalid
from ..model.limits import TextTooLong
from ..runtime import ExecutionConflict, ExecutionNotFound, ScheduleInvalid, ScheduleNotFound, WorkflowNotFound
from ..store import ConcurrencyConflict, StoreUnavailable

__all__ = ["status_of"]

_STATUSES: list[tuple[type[BaseException], int]] = [
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (AuthUnavailable, 503),
    (PayloadTooLarge, 413),
    (TextTooLong, 400),
    (PayloadError, 400),
    (InvalidRequest, 400),
    (WorkflowInvalid, 400),
    (InputInvalid, 400),
    (ExecutionNotFound, 404),
    (WorkflowNotFound, 404),
    (ScheduleNotFound, 404),
    (ScheduleInvalid, 400),
    (ExecutionConflict, 409),
    (CommandTooLarge, 413),
    (CommandRejected, 409),
    (ConcurrencyConflict, 409),
    (StoreUnavailable, 503),
]


def status_of(error: BaseException) -> int | None:
    """The HTTP status for an error the engine explains, or None for an unexpected one."""
    for error_type, status in _STATUSES:
        if isinstance(error, error_type):
            return status
    return None
