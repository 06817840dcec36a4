"""Every string field of every request checked against its limit, before any RPC runs.

One table by field name for both services (applied by `grpc_errors`), so a field added to a
request later is bounded too: a name not in the table gets the default limit. JSON payloads
(``*_json``) have their own byte limit where they are parsed.
"""

from __future__ import annotations

import sys
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ..model import labels, limits
from ..store.base import MAX_PAGE_TOKEN

__all__ = [
    "DEFAULT_TEXT_LIMIT",
    "MAP_LIMITS",
    "MAX_REPORTS_PER_CALL",
    "PER_ITEM_FIELDS",
    "TEXT_LIMITS",
    "check_request",
]

DEFAULT_TEXT_LIMIT: Final = 1024

# None: not refused here, cut instead (a failure message to limits.MAX_MESSAGE, a stack trace to
# limits.MAX_STACKTRACE): refusing would lose the failure they describe.
TEXT_LIMITS: Final[dict[str, int | None]] = {
    "worker_id": limits.MAX_WORKER_ID,
    "task_queue": limits.MAX_NAME,
    "steps": limits.MAX_NAME,
    "step": limits.MAX_NAME,
    "name": limits.MAX_NAME,
    "task_token": limits.MAX_TASK_TOKEN,
    "type": limits.MAX_ERROR_TYPE,
    "kind": limits.MAX_APPROVAL_KIND,
    "workflow": limits.MAX_WORKFLOW_KEY,
    "execution_id": limits.MAX_EXECUTION_ID,
    "ids": limits.MAX_EXECUTION_ID,  # a bulk action's executions
    "new_id": limits.MAX_EXECUTION_ID,  # a reset's new execution
    "id": limits.MAX_TASK_TOKEN,  # an execution's id, or a dead letter's (a task token)
    "approver": limits.MAX_APPROVER,
    "request_id": limits.MAX_REQUEST_ID,
    "reason": limits.MAX_REASON,
    "note": limits.MAX_REASON,  # a schedule's pause note
    "phase": 64,
    "phases": 64,  # a listing's phases
    "id_contains": limits.MAX_EXECUTION_ID,  # a listing's text in the id
    "page_token": MAX_PAGE_TOKEN,
    "message": None,
    "stacktrace": None,
}


# Maps of strings by field name: (the key's limit, the value's). Labels are checked for their syntax
# where they are used (`model.labels`); this only keeps a huge one from being read at all.
MAP_LIMITS: Final[dict[str, tuple[int, int]]] = {
    "labels": (labels.MAX_LABEL_PREFIX + 1 + labels.MAX_LABEL_NAME, labels.MAX_LABEL_VALUE),
}


# Repeated requests that an RPC carries (CompleteTasks' reports) are checked one by one by that RPC,
# so that one report's string over its limit is that report's error, not the whole call's.
PER_ITEM_FIELDS: Final = frozenset({"reports"})

# The most reports one CompleteTasks call may carry.
MAX_REPORTS_PER_CALL: Final = 256


def check_request(request: Message, rpc: str) -> None:
    """Raise TextTooLong naming the RPC, the field and its limit for the first string over it.

    A request no larger, encoded, than the smallest limit of any string it can hold has no string
    over its limit (a string's characters are at most its UTF-8 bytes): not walked. A step's report
    is such a request, a few hundred times a second."""
    if request.ByteSize() <= _smallest_limit(request.DESCRIPTOR):
        return
    _check(request, rpc, "")


# The smallest limit of any string field a message type can hold, nested messages and maps included.
_SMALLEST: dict[Any, int] = {}  # by message descriptor


def _smallest_limit(descriptor: Any, visiting: frozenset[Any] = frozenset()) -> int:
    known = _SMALLEST.get(descriptor)
    if known is not None:
        return known
    smallest = sys.maxsize
    for field in descriptor.fields:
        kind, limit = _plan(field)
        if kind == _TEXT:
            smallest = min(smallest, limit)
            continue
        inner = field.message_type
        if kind == _MAP and inner is not None:
            key_limit, value_limit = MAP_LIMITS.get(field.name, (DEFAULT_TEXT_LIMIT, DEFAULT_TEXT_LIMIT))
            smallest = min(smallest, key_limit, value_limit)
            inner = inner.fields_by_name["value"].message_type
        elif kind != _MESSAGE:
            continue
        if inner is not None and inner is not descriptor and inner not in visiting:
            smallest = min(smallest, _smallest_limit(inner, visiting | {descriptor}))
    if not visiting:  # a recursive type's inner answers are partial: only the outermost is kept
        _SMALLEST[descriptor] = smallest
    return smallest


_SKIP, _TEXT, _MESSAGE, _MAP = range(4)
# What `_check` does with each field, worked out once per field: it runs on every request.
_PLANS: dict[FieldDescriptor, tuple[int, int]] = {}


def _plan(field: FieldDescriptor) -> tuple[int, int]:
    plan = _PLANS.get(field)
    if plan is None:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            plan = (_SKIP, 0) if field.name in PER_ITEM_FIELDS else (_MAP if _is_map(field) else _MESSAGE, 0)
        elif field.type == FieldDescriptor.TYPE_STRING and not field.name.endswith("_json"):
            limit = TEXT_LIMITS.get(field.name, DEFAULT_TEXT_LIMIT)
            plan = (_SKIP, 0) if limit is None else (_TEXT, limit)
        else:
            plan = (_SKIP, 0)
        _PLANS[field] = plan
    return plan


def _check(message: Message, rpc: str, prefix: str) -> None:
    for field, value in message.ListFields():
        kind, limit = _plan(field)
        if kind == _TEXT:
            if field.is_repeated:  # a worker's step names, say: measured at C speed, walked only if one is long
                if max(map(len, value), default=0) > limit:
                    for text in value:
                        limits.check_text(text, what=f"{rpc}: {prefix}{field.name}", limit=limit)
            elif len(value) > limit:  # the message (and its path) only for a string over its limit
                limits.check_text(value, what=f"{rpc}: {prefix}{field.name}", limit=limit)
        elif kind == _MESSAGE:
            for item in value if field.is_repeated else (value,):
                _check(item, rpc, f"{prefix}{field.name}.")
        elif kind == _MAP:
            _check_map(field, value, rpc, f"{prefix}{field.name}")


def _is_map(field: FieldDescriptor) -> bool:
    """A map field: iterating it yields keys, not messages."""
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _check_map(field: FieldDescriptor, value: Any, rpc: str, path: str) -> None:
    key_limit, value_limit = MAP_LIMITS.get(field.name, (DEFAULT_TEXT_LIMIT, DEFAULT_TEXT_LIMIT))
    assert field.message_type is not None
    value_type = field.message_type.fields_by_name["value"].type
    value_is_text = value_type == FieldDescriptor.TYPE_STRING
    for key, item in value.items():
        if isinstance(key, str):
            limits.check_text(key, what=f"{rpc}: {path} key", limit=key_limit)
        if value_is_text:
            limits.check_text(item, what=f"{rpc}: {path}[{str(key)[:64]!r}]", limit=value_limit)
        elif value_type == FieldDescriptor.TYPE_MESSAGE:
            _check(item, rpc, f"{path}.")
