"""Durations as the SDK accepts them: seconds, ``timedelta`` or strings like ``"1h30m"``."""

from __future__ import annotations

import math
import re
from datetime import timedelta

__all__ = ["Duration", "duration_ms", "parse_duration"]

Duration = float | int | timedelta | str
"""Seconds (``float``/``int``), a ``timedelta`` or a string with units ``ms``/``s``/``m``/``h``/``d``."""

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: Duration) -> float:
    """Return ``value`` in seconds; raise ``ValueError`` for negative or malformed durations.

    Strings are one or more ``<number><unit>`` parts, e.g. ``"500ms"``, ``"3d"``, ``"1h30m"``.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        seconds = _parse_text(value)
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a duration must be seconds, a timedelta or a string like '1h30m', not {value!r}")
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be finite and not negative, not {value!r}")
    return seconds


def duration_ms(value: Duration) -> int:
    """Return ``value`` in whole milliseconds (rounded)."""
    return round(parse_duration(value) * 1000)


def _parse_text(text: str) -> float:
    compact = text.replace(" ", "")
    pos = 0
    total = 0.0
    while pos < len(compact):
        match = _PART.match(compact, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not compact or pos != len(compact):
        raise ValueError(f"invalid duration {text!r}: expected parts like '500ms', '30s', '5m', '1h30m' or '3d'")
    return total
