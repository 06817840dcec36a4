"""Size limits on what the engine stores and hands out, in one place for the API and the engine.

Every string a caller gives that ends up in a history (worker ids, error types, approvers,
reasons, ids, names) has a length limit: an event is read back whole, so one 2 MiB worker id
would make every later GetHistory of its execution exceed the gRPC message limit. Payloads
(JSON) have their own byte limit; what a task carries (the input and every result so far) has a
total, derived from the message limit the server sends with.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_APPROVAL_KIND",
    "MAX_APPROVER",
    "MAX_ERROR_TYPE",
    "MAX_EXECUTION_ID",
    "MAX_MESSAGE",
    "MAX_NAME",
    "MAX_QUEUED_SIGNALS",
    "MAX_QUEUED_SIGNAL_BYTES",
    "MAX_REASON",
    "MAX_REQUEST_ID",
    "MAX_SIGNAL_NAME",
    "MAX_STACKTRACE",
    "MAX_TASK_TOKEN",
    "MAX_VARIABLES",
    "MAX_VARIABLES_BYTES",
    "MAX_WORKER_ID",
    "MAX_WORKFLOW_KEY",
    "PROTOCOL_OVERHEAD_BYTES",
    "TextTooLong",
    "check_text",
    "compact_json",
    "cut_middle",
    "describe_size",
    "json_size",
    "json_text",
    "message_limit",
    "task_budget",
]

DEFAULT_MAX_PAYLOAD_BYTES: Final = 2 * 1024 * 1024

MAX_WORKER_ID: Final = 256
MAX_ERROR_TYPE: Final = 256
MAX_APPROVAL_KIND: Final = 256
# A Kubernetes username: "system:serviceaccount:" + a 63-character namespace + a 253-character name.
MAX_APPROVER: Final = 512
MAX_REASON: Final = 8 * 1024  # a rejection or cancel reason, like a failure message
MAX_MESSAGE: Final = 8 * 1024  # failure messages are cut to this, not refused: a stack's summary
MAX_STACKTRACE: Final = 32 * 1024  # a failed step's stack trace, cut in the middle past this
MAX_REQUEST_ID: Final = 256
MAX_NAME: Final = 253  # workflow, step and queue names: a Kubernetes object name's length
MAX_WORKFLOW_KEY: Final = 63 + 1 + MAX_NAME  # "namespace/name" in the operator
MAX_EXECUTION_ID: Final = 128
MAX_TASK_TOKEN: Final = 1024  # "<execution>/<step>/<attempt>/<poll>/<seq>"
# Workflow variables travel with every task and are shown by `describe`: small state, not data.
MAX_VARIABLES: Final = 100
# A forEach step: items of its list, and items in flight at once. Each item's outcome is one event,
# so 10,000 items stay well inside the default history limit of 20,000 events.
MAX_FOR_EACH_ITEMS: Final = 10_000
MAX_FOR_EACH_CONCURRENCY: Final = 1000
MAX_VARIABLES_BYTES: Final = 256 * 1024
MAX_SIGNAL_NAME: Final = 63  # a signal's name: a signal step's `name`, as the spec's pattern allows
MAX_QUEUED_SIGNALS: Final = 1000  # signals received and not taken yet, per execution
MAX_QUEUED_SIGNAL_BYTES: Final = 4 * 1024 * 1024  # their payloads' JSON, together

# Room in a PollTask reply for everything beside the arguments: token, ids, names, framing.
PROTOCOL_OVERHEAD_BYTES: Final = 64 * 1024


class TextTooLong(ValueError):
    """A string over its limit; the message names the field and the limit."""


def check_text(value: str, *, what: str, limit: int) -> str:
    """``value`` unchanged when it is at most ``limit`` characters; raises TextTooLong otherwise."""
    if len(value) > limit:
        raise TextTooLong(f"{what} is {len(value)} characters long, over the limit of {limit}")
    return value


def cut_middle(text: str, *, limit: int, what: str) -> str:
    """``text`` when at most ``limit`` characters; otherwise its two ends around a marker, ``limit`` in all.

    For a stack trace: cut, not refused, because refusing would lose the failure it explains, and
    its ends are what matter (Python writes the innermost frame and the exception last, JavaScript
    first); a deep recursion repeats the middle.
    """
    if len(text) <= limit:
        return text

    def marker(cut: int) -> str:
        return f"\n… [{cut:,} characters of the {what} cut here: it is kept to {limit:,}] …\n"

    # Sized for the longest count first, so the text with the real count is never over the limit.
    keep = limit - len(marker(len(text)))
    if keep <= 0:  # a limit too small for the marker
        return text[:limit]
    head, tail = keep - keep // 2, keep // 2
    return text[:head] + marker(len(text) - keep) + (text[len(text) - tail :] if tail else "")


def message_limit(max_payload_bytes: int) -> int:
    """The gRPC message limit the server sends and receives with: two payloads and a margin."""
    return 2 * max_payload_bytes + 1024 * 1024


def task_budget(max_payload_bytes: int) -> int:
    """The most a task's arguments (input and results so far) may weigh, as sent to a worker."""
    return message_limit(max_payload_bytes) - PROTOCOL_OVERHEAD_BYTES


# json.dumps with separators builds a JSONEncoder per call: one, shared, is a third cheaper.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def compact_json(value: Any) -> str:
    """``value`` as compact JSON with ASCII escapes, as json.dumps(value, separators=(",", ":"))."""
    return _COMPACT.encode(value)


def json_text(value: Any) -> str:
    """``value`` as compact JSON, text past ASCII as it is: what the store and the wire carry.

    orjson writes it, several times faster than json: every step encodes its events, its task and its
    summary under the GIL the engine's loop needs too (bench/analysis.md). What orjson refuses is
    written by `compact_json`, as before: integers past 64 bits, non-text keys, lone surrogates (the
    API refuses these in payloads; a value the engine builds could still hold one). NaN and infinity
    never get here: the API and CEL's results refuse them (api/payloads.py, engine/expressions.py).
    Sizes are still `json_size`'s, the escaped form, never smaller than this one."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return compact_json(value)


def json_size(value: Any) -> int:
    """Bytes of ``value`` as the API writes it (compact JSON, ASCII escapes): deterministic."""
    return 4 if value is None else len(_COMPACT.encode(value))


def describe_size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KiB"
