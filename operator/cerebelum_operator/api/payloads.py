"""JSON payloads on the wire: parsed, size-checked, and refused with a message that names them."""

from __future__ import annotations

import json
from typing import Any

from ..model.limits import DEFAULT_MAX_PAYLOAD_BYTES, json_text

__all__ = ["DEFAULT_MAX_PAYLOAD_BYTES", "PayloadError", "PayloadTooLarge", "dump_json", "parse_json"]


class PayloadError(ValueError):
    """Malformed JSON."""


class PayloadTooLarge(PayloadError):
    """Over the configured payload limit."""


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KiB"


def parse_json(text: str, *, what: str, limit: int, empty: Any = None) -> Any:
    size = len(text.encode()) if len(text) * 4 > limit else len(text)
    if size > limit:
        raise PayloadTooLarge(f"{what} is {_size(size)}, over the {_size(limit)} payload limit")
    if not text:
        return empty
    try:
        if text.startswith("\ufeff"):  # as json.loads refuses it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise PayloadError(f"{what} is nested too deep to parse") from None
    except ValueError as exc:  # NaN or Infinity: Python reads them, JSON (and PostgreSQL) does not
        raise PayloadError(f"{what} is not valid JSON: {exc}") from None
    if "\\u" in text:
        try:  # a lone surrogate escape decodes to a string no UTF-8 store can hold
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise PayloadError(f"{what} is not valid JSON: it escapes a lone UTF-16 surrogate") from None
    return value


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


# One decoder for every payload: `json.loads` with an option builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_not_json)


def dump_json(value: Any) -> str:
    return "" if value is None else json_text(value)
