"""Step options and how they are written in a ``step`` command (the protocol's camelCase fields)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cerebelum.durations import Duration, duration_ms

__all__ = ["RetryPolicy", "StepOptions", "format_duration"]


def format_duration(value: Duration) -> str:
    """``1.5`` -> ``"1500ms"``, ``timedelta(seconds=30)`` -> ``"30s"``: the protocol's duration text."""
    ms = duration_ms(value)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """A step's retry policy, as ``retry`` in YAML; it replaces the workflow's default policy whole."""

    max_attempts: int | None = None
    initial_interval: Duration | None = None
    backoff_coefficient: float | None = None
    max_interval: Duration | None = None
    jitter: float | None = None
    non_retryable_errors: tuple[str, ...] | list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.max_attempts is not None:
            out["maxAttempts"] = self.max_attempts
        if self.initial_interval is not None:
            out["initialInterval"] = format_duration(self.initial_interval)
        if self.backoff_coefficient is not None:
            out["backoffCoefficient"] = self.backoff_coefficient
        if self.max_interval is not None:
            out["maxInterval"] = format_duration(self.max_interval)
        if self.jitter is not None:
            out["jitter"] = self.jitter
        if self.non_retryable_errors is not None:
            out["nonRetryableErrors"] = list(self.non_retryable_errors)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOptions:
    """Options of one ``wf.step`` call; unset ones take the workflow's ``defaults``.

    Durations are seconds, a ``timedelta`` or text like ``"30s"``. ``retry`` is a
    :class:`RetryPolicy` or the YAML mapping (``{"maxAttempts": 2}``), sent as given.
    """

    task_queue: str | None = None
    timeout: Duration | None = None
    heartbeat_timeout: Duration | None = None
    schedule_to_start_timeout: Duration | None = None
    retry: RetryPolicy | dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The command fields these options set."""
        out: dict[str, Any] = {}
        if self.task_queue is not None:
            out["taskQueue"] = self.task_queue
        if self.timeout is not None:
            out["timeout"] = format_duration(self.timeout)
        if self.heartbeat_timeout is not None:
            out["heartbeatTimeout"] = format_duration(self.heartbeat_timeout)
        if self.schedule_to_start_timeout is not None:
            out["scheduleToStartTimeout"] = format_duration(self.schedule_to_start_timeout)
        if self.retry is not None:
            out["retry"] = self.retry.to_json() if isinstance(self.retry, RetryPolicy) else dict(self.retry)
        return out
