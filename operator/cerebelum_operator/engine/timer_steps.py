"""When a timer step wakes, and the time it records: pure functions `decide` uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..model import StepConfig
from ..model.durations import MAX_DURATION_MS
from .expressions import ExpressionError, evaluate

__all__ = ["rfc3339", "wake_at"]


def wake_at(config: StepConfig, variables: dict[str, Any], *, now_ms: int) -> int:
    """The step's wake time: ``duration`` from now, or its ``until`` (raises ExpressionError).

    A time already past wakes at once; one past the longest duration is brought within it.
    """
    if config.timer_until is not None:
        where = f"steps.{config.name}.timer.until"
        at = _epoch_ms(evaluate(config.timer_until, variables, where=where), where=where)
    else:
        at = now_ms + (config.timer_duration_ms or 0)
    return min(max(at, now_ms), now_ms + MAX_DURATION_MS)


def rfc3339(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch_ms(value: Any, *, where: str) -> int:
    """A CEL timestamp, or RFC 3339 text with its offset, as epoch milliseconds."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ExpressionError(f"{where}: {value[:80]!r} is not an RFC 3339 timestamp") from None
        if value.tzinfo is None:
            raise ExpressionError(f"{where}: the timestamp has no offset (add Z for UTC)")
    if not isinstance(value, datetime):
        raise ExpressionError(f"{where}: gave a {type(value).__name__}, not a timestamp (use timestamp('...'))")
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)
