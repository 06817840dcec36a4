"""Every string field of every request checked against its limit, before any RPC runs.

One table by field name for both services (applied by `grpc_errors`), so a field added to a
request later is bounded too: a name not in the table gets the default limit. JSON payloads
(``*_json``) have their own byte limit where they are parsed.
"""

from __future__ import annotations

from typing import Final

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ..model import limits

__all__ = ["DEFAULT_TEXT_LIMIT", "TEXT_LIMITS", "check_request"]

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
    "message": None,
    "stacktrace": None,
}


def check_request(request: Message, rpc: str) -> None:
    """Raise TextTooLong naming the RPC, the field and its limit for the first string over it."""
    _check(request, rpc, "")


def _check(message: Message, rpc: str, prefix: str) -> None:
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else (value,):
                _check(item, rpc, f"{path}.")
        elif field.type == FieldDescriptor.TYPE_STRING and not field.name.endswith("_json"):
            limit = TEXT_LIMITS.get(field.name, DEFAULT_TEXT_LIMIT)
            if limit is None:
                continue
            for text in value if field.is_repeated else (value,):
                limits.check_text(text, what=f"{rpc}: {path}", limit=limit)
