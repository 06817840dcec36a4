"""JSON encoding of step results and payloads (pydantic-aware) and decoding of server JSON."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

__all__ = ["dumps", "loads", "to_jsonable"]

_PLAIN = frozenset({dict, list, str, int, float, bool, type(None)})
_adapters: dict[type[Any], TypeAdapter[Any]] = {}


def to_jsonable(value: Any) -> Any:
    """Convert ``value`` (pydantic models, dataclasses, datetimes, ...) to plain JSON data."""
    cls = type(value)
    adapter = _adapters.get(cls)
    if adapter is None:
        adapter = _adapters[cls] = TypeAdapter(cls)
    return adapter.dump_python(value, mode="json")


def dumps(value: Any) -> str:
    """Encode ``value`` as compact JSON text; raises ``TypeError``/``ValueError`` if it cannot be."""
    if type(value) in _PLAIN:
        try:  # fast path: plain JSON data needs no pydantic
            return json.dumps(value, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            pass
    try:
        data = to_jsonable(value)
    except Exception as exc:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON: {exc}") from exc
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def loads(text: str) -> Any:
    """Decode server JSON text; the empty string means ``None``."""
    return json.loads(text) if text else None
