"""Durations as users write them (``90s``, ``5m``, ``1h30m``, ``3d``), kept as milliseconds."""

from __future__ import annotations

import re

__all__ = ["MAX_DURATION_MS", "DurationError", "format_duration", "parse_duration"]

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
# A hundred years: longer is a typo, and instants computed from it must fit the store's 64-bit integers.
MAX_DURATION_MS = 36_500 * 86_400_000
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"


class DurationError(ValueError):
    """A duration string that is not of the form ``<number><unit>…``."""


def parse_duration(text: str) -> int:
    """Return the duration in milliseconds; units are ms, s, m, h and d."""
    cleaned = text.strip()
    position = 0
    total = 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        position = match.end()
    if not cleaned or position != len(cleaned):
        raise DurationError(f"bad duration {_shown(text)}: use a number and a unit (ms, s, m, h, d), like 30s or 1h30m")
    if not total <= MAX_DURATION_MS:  # also catches a number too long to be a float (infinity)
        raise DurationError(f"bad duration {_shown(text)}: longer than the maximum, 36500d (a hundred years)")
    return int(total)


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else f"{text[:20]!r}… ({len(text)} characters)"


def format_duration(milliseconds: int) -> str:
    """The shortest readable form: ``1h30m``, ``250ms``."""
    if milliseconds <= 0:
        return "0s"
    parts: list[str] = []
    remaining = milliseconds
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNIT_MS[unit]
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
