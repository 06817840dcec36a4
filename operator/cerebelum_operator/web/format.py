"""How values read on a page: RFC 3339 times, durations, JSON shown whole up to a bound."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote as _quote
from urllib.parse import urlencode

__all__ = ["FILTERS", "MAX_SHOWN_JSON", "duration", "parse_time", "pretty_json", "quote", "rfc3339"]

MAX_SHOWN_JSON = 64 * 1024  # a larger value is cut, saying so; `cerebelum history` shows it whole


def rfc3339(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def duration(ms: int | None) -> str:
    if ms is None or ms < 0:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def pretty_json(value: Any) -> str:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > MAX_SHOWN_JSON:
        return text[:MAX_SHOWN_JSON] + f"\n… cut at {MAX_SHOWN_JSON} of {len(text)} characters"
    return text


def quote(text: str) -> str:
    return _quote(text, safe="/")


def parse_time(text: str) -> int | None:
    """Milliseconds of an RFC 3339 time or a form's ``datetime-local`` (read as UTC); None if empty."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a time: use RFC 3339, for example 2026-12-05T08:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def query_string(values: dict[str, Any]) -> str:
    """A URL query of the non-empty values (lists repeat their key)."""
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        for one in value if isinstance(value, list | tuple) else [value]:
            if one not in (None, ""):
                pairs.append((key, str(one)))
    return urlencode(pairs)


FILTERS = {"time": rfc3339, "duration": duration, "pretty_json": pretty_json, "urlquote": quote}
