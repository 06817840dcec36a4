"""The engine's errors as HTTP statuses, with the engine's own message (what gRPC callers see).

One table says which errors the engine explains and how (`api.errors`); this maps its statuses on
to HTTP, so an error the API learns to explain is explained here too.
"""

from __future__ import annotations

from ..api.errors import status_code_of

__all__ = ["status_of"]

_HTTP = {
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "UNAVAILABLE": 503,
    "RESOURCE_EXHAUSTED": 413,
    "INVALID_ARGUMENT": 400,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 409,
    "ABORTED": 409,
    "DATA_LOSS": 500,
}


def status_of(error: BaseException) -> int | None:
    """The HTTP status for an error the engine explains, or None for an unexpected one."""
    code = status_code_of(error)
    return None if code is None else _HTTP.get(code.name, 500)
