"""How a connection's outage is logged: once per distinct reason, not once per retry.

A poller retries every few seconds; logging each retry floods the log, but logging only the
first failure hides a change of cause (the engine came back, now refusing the token): each
reason is logged the first time it appears in an outage, and the recovery once.
"""

from __future__ import annotations

import grpc

__all__ = ["Outage", "describe", "reason_of"]

_MAX_REASONS = 32  # distinct reasons remembered per outage (gRPC has 17 codes)


def reason_of(exc: BaseException) -> str:
    """What makes two failures "the same": the gRPC status code, else the exception's class."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code().name
    return type(exc).__name__


def describe(exc: BaseException) -> str:
    """The reason and the details, for a log line."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


class Outage:
    """The failures since the connection last worked, as seen by any number of retrying callers."""

    __slots__ = ("_reasons", "since")

    def __init__(self) -> None:
        self.since: float | None = None
        self._reasons: set[str] = set()

    def failed(self, exc: BaseException, now: float) -> bool:
        """Record a failure at ``now``; True when its reason is new in this outage (log it)."""
        if self.since is None:
            self.since = now
        reason = reason_of(exc)
        if reason in self._reasons or len(self._reasons) >= _MAX_REASONS:
            return False
        self._reasons.add(reason)
        return True

    def recovered(self, now: float) -> float | None:
        """The connection works again: how long the outage lasted, or None if there was none."""
        if self.since is None:
            return None
        lasted = now - self.since
        self.since = None
        self._reasons.clear()
        return lasted
