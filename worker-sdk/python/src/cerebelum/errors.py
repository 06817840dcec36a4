"""Exceptions: errors steps raise to control failures, and errors the server answers with."""

from __future__ import annotations

from typing import Literal

import grpc

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "ApplicationError",
    "CancelReason",
    "CerebelumError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "NonRetryableError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "ServerError",
    "StepCancelled",
    "UnauthenticatedError",
    "UnavailableError",
    "code_name",
    "error_from_rpc",
]


class ApplicationError(Exception):
    """Raised by a step to fail its attempt with a chosen ``type`` and retryability.

    Any other exception fails the attempt too (retryably, typed by its class name);
    this one lets the step name the failure type and mark it ``non_retryable``.
    """

    def __init__(self, message: str, *, type: str | None = None, non_retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.type = type or self.__class__.__name__
        self.non_retryable = non_retryable


class NonRetryableError(ApplicationError):
    """An :class:`ApplicationError` that is never retried."""

    def __init__(self, message: str, *, type: str | None = None) -> None:
        super().__init__(message, type=type, non_retryable=True)


CancelReason = Literal["cancel_requested", "heartbeat_timeout", "lease_lost", "shutdown"]
"""Why a step must stop: the engine asked, it missed its heartbeat timeout, its task was taken
away, or the worker is stopping."""

_CANCEL_MESSAGES: dict[CancelReason, str] = {
    "cancel_requested": "the step was cancelled on request",
    "heartbeat_timeout": "the step did not heartbeat within its heartbeat timeout: its lease is gone",
    "lease_lost": "the step's lease was lost: its task is no longer this worker's",
    "shutdown": "the worker is shutting down",
}


class StepCancelled(Exception):
    """Raised by ``ctx.heartbeat()`` once the step must stop; ``reason`` says why.

    Sync steps run in threads that cannot be interrupted: this is how they learn, at their next
    heartbeat, that they were cancelled or timed out. Let it propagate (clean up in ``finally``).
    """

    def __init__(self, reason: CancelReason) -> None:
        super().__init__(_CANCEL_MESSAGES[reason])
        self.reason: CancelReason = reason


class CerebelumError(Exception):
    """An error answered by the Cerebelum server.

    ``code`` is the gRPC status code name in CamelCase (``"NotFound"``,
    ``"InvalidArgument"``, ...) and ``message`` the server's message.
    """

    def __init__(self, message: str, code: str = "Unknown") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.message = message
        self.code = code


class NotFoundError(CerebelumError):
    """The execution, workflow or dead letter does not exist."""


class InvalidArgumentError(CerebelumError):
    """The request was malformed (bad spec, bad JSON, unknown step, ...)."""


class AlreadyExistsError(CerebelumError):
    """The object already exists and cannot be created again."""


class FailedPreconditionError(CerebelumError):
    """The object is not in a state that allows the operation (e.g. approving a finished step)."""


class PermissionDeniedError(CerebelumError):
    """The caller is not allowed to do this."""


class UnauthenticatedError(CerebelumError):
    """The token is missing or invalid."""


class UnavailableError(CerebelumError):
    """The server cannot be reached or is shutting down."""


class DeadlineExceededError(CerebelumError):
    """The call did not finish in time."""


class ResourceExhaustedError(CerebelumError):
    """A limit was hit (payload size, rate, quota)."""


class AbortedError(CerebelumError):
    """The operation conflicted with a concurrent one; it may be retried."""


class ServerError(CerebelumError):
    """Any other server error (``Internal``, ``Unknown``, ``Unimplemented``, ...)."""


_BY_CODE: dict[grpc.StatusCode, type[CerebelumError]] = {
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.ABORTED: AbortedError,
}


def code_name(code: grpc.StatusCode) -> str:
    """``grpc.StatusCode.NOT_FOUND`` -> ``"NotFound"``."""
    return "".join(part.capitalize() for part in code.name.split("_"))


def error_from_rpc(exc: grpc.RpcError, *, tls: bool | None = None) -> CerebelumError:
    """Translate a gRPC error (sync or aio) into the matching :class:`CerebelumError` subclass.

    ``tls`` says whether the channel encrypts; when given, a failure to connect that looks like a
    TLS mismatch says so, since gRPC reports a plaintext client at a TLS engine only as "Socket closed".
    """
    try:
        code = exc.code()
        details = exc.details() or ""
    except Exception:  # a bare RpcError without status (should not happen)
        return ServerError(str(exc), "Unknown")
    if code == grpc.StatusCode.UNAVAILABLE and tls is not None:
        details += _tls_hint(details, tls=tls)
    return _BY_CODE.get(code, ServerError)(details, code_name(code))


def _tls_hint(details: str, *, tls: bool) -> str:
    if not tls and "Socket closed" in details:
        return (
            " (the engine may require TLS: set CEREBELUM_TLS=1, and CEREBELUM_TLS_CA to its CA's PEM file"
            " if a private CA signed its certificate)"
        )
    if tls and "WRONG_VERSION_NUMBER" in details:
        return " (the engine may not serve TLS: unset CEREBELUM_TLS and CEREBELUM_TLS_CA)"
    if tls and "CERTIFICATE_VERIFY_FAILED" in details:
        return " (the engine's certificate is not trusted: set CEREBELUM_TLS_CA to the PEM file of its CA)"
    return ""
