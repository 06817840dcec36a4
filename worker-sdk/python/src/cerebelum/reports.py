"""Turn what a step returned or raised into the ``CompleteTaskRequest`` that reports it."""

from __future__ import annotations

import traceback
from typing import Any

from cerebelum.errors import ApplicationError
from cerebelum.jsoncodec import dumps
from cerebelum.outcomes import ApprovalRequest, RetryAfter, Sleep
from cerebelum.v1 import worker_pb2

__all__ = ["cancelled_report", "failure_report", "invalid_payload_report", "value_report"]


def value_report(token: str, worker_id: str, value: Any) -> worker_pb2.CompleteTaskRequest:
    """Report a returned value: an outcome (``RetryAfter``, ``Sleep``, ``ApprovalRequest``) or a success."""
    try:
        if isinstance(value, RetryAfter):
            return worker_pb2.CompleteTaskRequest(
                task_token=token, worker_id=worker_id, retry_after=worker_pb2.RetryAfter(delay_ms=value.delay_ms)
            )
        if isinstance(value, Sleep):
            sleep = worker_pb2.Sleep(duration_ms=value.duration_ms, output_json=dumps(value.result))
            return worker_pb2.CompleteTaskRequest(task_token=token, worker_id=worker_id, sleep=sleep)
        if isinstance(value, ApprovalRequest):
            approval = worker_pb2.ApprovalRequest(
                kind=value.kind, timeout_ms=value.timeout_ms, data_json=dumps(value.data)
            )
            return worker_pb2.CompleteTaskRequest(task_token=token, worker_id=worker_id, approval=approval)
        return worker_pb2.CompleteTaskRequest(
            task_token=token, worker_id=worker_id, success=worker_pb2.Success(output_json=dumps(value))
        )
    except (TypeError, ValueError) as exc:
        return _failure(token, worker_id, "InvalidOutput", f"the step's result cannot be encoded as JSON: {exc}", True)


def failure_report(token: str, worker_id: str, exc: BaseException) -> worker_pb2.CompleteTaskRequest:
    """Report an exception: typed by its class name and retryable, unless it is an ``ApplicationError``."""
    if isinstance(exc, ApplicationError):
        kind, message, non_retryable = exc.type, exc.message, exc.non_retryable
    else:
        kind, message, non_retryable = type(exc).__name__, str(exc), False
    stacktrace = "".join(traceback.format_exception(exc))
    return _failure(token, worker_id, kind, message, non_retryable, stacktrace)


def cancelled_report(token: str, worker_id: str, message: str) -> worker_pb2.CompleteTaskRequest:
    return worker_pb2.CompleteTaskRequest(
        task_token=token, worker_id=worker_id, cancelled=worker_pb2.Cancelled(message=message)
    )


def invalid_payload_report(
    request: worker_pb2.CompleteTaskRequest, kind: str, message: str
) -> worker_pb2.CompleteTaskRequest:
    """The non-retryable failure that replaces an outcome the server refused (too large, invalid)."""
    return _failure(request.task_token, request.worker_id, kind, message, True)


def _failure(
    token: str, worker_id: str, kind: str, message: str, non_retryable: bool, stacktrace: str = ""
) -> worker_pb2.CompleteTaskRequest:
    failure = worker_pb2.Failure(type=kind, message=message, non_retryable=non_retryable, stacktrace=stacktrace)
    return worker_pb2.CompleteTaskRequest(task_token=token, worker_id=worker_id, failure=failure)
