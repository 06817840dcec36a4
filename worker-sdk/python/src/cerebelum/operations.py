"""The client operations, written once as generators that yield RPC calls and receive replies.

``Client`` drives them with blocking calls and ``AsyncClient`` with awaits, so the request
building, paging, waiting and parsing exist in one place only.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf.message import Message

from cerebelum.jsoncodec import dumps
from cerebelum.models import BulkOutcome, DeadLetter, Execution, ExecutionList, HistoryEvent, WorkflowInfo
from cerebelum.v1 import workflow_pb2 as pb

__all__ = [
    "Call",
    "Operation",
    "apply_workflow",
    "approve",
    "cancel",
    "dead_letters",
    "get",
    "get_workflow",
    "history",
    "list_executions",
    "list_workflows",
    "redrive",
    "reject",
    "signal",
    "signal_with_start",
    "start",
    "wait",
]

T = TypeVar("T")

MAX_WAIT_MS = 30_000
HISTORY_PAGE = 1000
_WAIT_MARGIN = 10.0  # seconds a WaitExecution may take beyond its wait_ms


@dataclass(frozen=True, slots=True)
class Call:
    """One RPC to make: ``method`` of WorkflowService with ``request``; ``timeout`` overrides the default."""

    method: str
    request: Message
    timeout: float | None = None


Operation = Generator[Call, Any, T]


def _execution(call: Call) -> Operation[Execution]:
    info = yield call
    return Execution.from_proto(info)


def apply_workflow(name: str, spec: dict[str, Any]) -> Operation[WorkflowInfo]:
    info = yield Call("ApplyWorkflow", pb.ApplyWorkflowRequest(name=name, spec_json=dumps(spec)))
    return WorkflowInfo.from_proto(info)


def get_workflow(name: str) -> Operation[WorkflowInfo]:
    info = yield Call("GetWorkflow", pb.GetWorkflowRequest(name=name))
    return WorkflowInfo.from_proto(info)


def list_workflows() -> Operation[list[WorkflowInfo]]:
    reply = yield Call("ListWorkflows", pb.ListWorkflowsRequest())
    return [WorkflowInfo.from_proto(info) for info in reply.workflows]


def start(
    workflow: str, input: Any = None, execution_id: str | None = None, labels: Mapping[str, str] | None = None
) -> Operation[Execution]:
    request = pb.StartExecutionRequest(
        workflow=workflow,
        input_json="" if input is None else dumps(input),
        execution_id=execution_id or "",
        labels=dict(labels or {}),
    )
    return (yield from _execution(Call("StartExecution", request)))


def get(execution_id: str, latest_run: bool = False) -> Operation[Execution]:
    request = pb.GetExecutionRequest(id=execution_id, latest_run=latest_run)
    return (yield from _execution(Call("GetExecution", request)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ListFilter:
    """What `list_executions` asks for; every filter given must hold."""

    workflow: str | None = None
    phases: Sequence[str] = ()
    labels: Mapping[str, str] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    id_contains: str | None = None


def list_executions(filters: ListFilter, limit: int, page_token: str | None) -> Operation[ExecutionList]:
    phases = list(dict.fromkeys(filters.phases))
    request = pb.ListExecutionsRequest(
        workflow=filters.workflow or "",
        # One phase goes in the field engines before `phases` read too, so they still filter by it.
        phase=phases[0] if len(phases) == 1 else "",
        phases=phases if len(phases) > 1 else [],
        limit=limit,
        labels=dict(filters.labels or {}),
        id_contains=filters.id_contains or "",
        page_token=page_token or "",
    )
    for name, at in (("created_after", filters.created_after), ("created_before", filters.created_before)):
        if at is not None:
            if at.tzinfo is None:
                raise ValueError(f"{name} must be an aware datetime (with a time zone), not {at!r}")
            getattr(request, name).FromDatetime(at)
    reply = yield Call("ListExecutions", request)
    executions = tuple(Execution.from_proto(info) for info in reply.executions)
    return ExecutionList(executions, reply.next_page_token or None)


def history(execution_id: str, after_seq: int) -> Operation[list[HistoryEvent]]:
    events: list[HistoryEvent] = []
    while True:
        request = pb.GetHistoryRequest(id=execution_id, after_seq=after_seq, limit=HISTORY_PAGE)
        reply = yield Call("GetHistory", request)
        if not reply.events:
            return events
        events.extend(HistoryEvent.from_proto(event) for event in reply.events)
        after_seq = events[-1].seq


def wait(execution_id: str, timeout: float | None, follow_runs: bool = False) -> Operation[Execution]:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining_ms = MAX_WAIT_MS if deadline is None else max(0, round((deadline - time.monotonic()) * 1000))
        wait_ms = min(MAX_WAIT_MS, remaining_ms)
        request = pb.WaitExecutionRequest(id=execution_id, wait_ms=wait_ms, follow_runs=follow_runs)
        execution = yield from _execution(Call("WaitExecution", request, timeout=wait_ms / 1000 + _WAIT_MARGIN))
        # Following runs, a run that continued as new is not the end: its next run may not exist yet.
        if execution.is_terminal and not (follow_runs and execution.phase == "ContinuedAsNew"):
            return execution
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"execution {execution_id!r} is still {execution.phase} after {timeout} s")


def approve(execution_id: str, step: str, approver: str, payload: Any) -> Operation[Execution]:
    request = pb.ApproveRequest(
        id=execution_id, step=step, approver=approver, payload_json="" if payload is None else dumps(payload)
    )
    return (yield from _execution(Call("Approve", request)))


def reject(execution_id: str, step: str, approver: str, reason: str) -> Operation[Execution]:
    request = pb.RejectRequest(id=execution_id, step=step, approver=approver, reason=reason)
    return (yield from _execution(Call("Reject", request)))


def cancel(execution_id: str, reason: str) -> Operation[Execution]:
    request = pb.CancelExecutionRequest(id=execution_id, reason=reason)
    return (yield from _execution(Call("CancelExecution", request)))


def pause(execution_id: str, reason: str) -> Operation[Execution]:
    return (yield from _execution(Call("PauseExecution", pb.PauseExecutionRequest(id=execution_id, reason=reason))))


def resume(execution_id: str) -> Operation[Execution]:
    return (yield from _execution(Call("ResumeExecution", pb.ResumeExecutionRequest(id=execution_id))))


def pause_workflow(name: str, reason: str) -> Operation[WorkflowInfo]:
    reply = yield Call("PauseWorkflow", pb.PauseWorkflowRequest(name=name, reason=reason))
    return WorkflowInfo.from_proto(reply)


def resume_workflow(name: str) -> Operation[WorkflowInfo]:
    reply = yield Call("ResumeWorkflow", pb.ResumeWorkflowRequest(name=name))
    return WorkflowInfo.from_proto(reply)


def reset(execution_id: str, step: str, *, new_id: str | None, reason: str) -> Operation[Execution]:
    request = pb.ResetExecutionRequest(id=execution_id, step=step, new_id=new_id or "", reason=reason)
    return (yield from _execution(Call("ResetExecution", request)))


@dataclass(frozen=True, slots=True)
class BulkResult:
    """Each execution's outcome, and whether more matched than the limit let through."""

    outcomes: list[BulkOutcome]
    truncated: bool


def bulk(
    action: str,
    *,
    ids: list[str] | None,
    workflow: str | None,
    phase: str | None,
    everything: bool,
    limit: int,
    reason: str,
    dry_run: bool,
) -> Operation[BulkResult]:
    request = pb.BulkExecutionsRequest(
        action=action,
        ids=ids or [],
        workflow=workflow or "",
        phase=phase or "",
        all=everything,
        limit=limit,
        reason=reason,
        dry_run=dry_run,
    )
    reply = yield Call("BulkExecutions", request)
    return BulkResult([BulkOutcome.from_proto(o) for o in reply.outcomes], reply.truncated)


def dead_letters(execution_id: str | None) -> Operation[list[DeadLetter]]:
    reply = yield Call("ListDeadLetters", pb.ListDeadLettersRequest(execution_id=execution_id or ""))
    return [DeadLetter.from_proto(letter) for letter in reply.dead_letters]


def redrive(dead_letter_id: str, *, with_current_workflow: bool = False) -> Operation[Execution]:
    request = pb.RedriveDeadLetterRequest(id=dead_letter_id, with_current_workflow=with_current_workflow)
    return (yield from _execution(Call("RedriveDeadLetter", request)))


# -- signals (issue 17) -------------------------------------------------------------------------


def _payload(value: Any) -> str:
    """JSON text, "" for ``None`` (the engine reads "" as null)."""
    return "" if value is None else dumps(value)


def signal(execution_id: str, name: str, data: Any, request_id: str | None) -> Operation[Execution]:
    request = pb.SignalExecutionRequest(
        id=execution_id, name=name, data_json=_payload(data), request_id=request_id or ""
    )
    return (yield from _execution(Call("SignalExecution", request)))


def signal_with_start(
    workflow: str,
    execution_id: str,
    input: Any,
    name: str,
    data: Any,
    request_id: str | None,
    labels: Mapping[str, str] | None = None,
) -> Operation[Execution]:
    request = pb.SignalWithStartRequest(
        workflow=workflow,
        execution_id=execution_id,
        input_json=_payload(input),
        name=name,
        data_json=_payload(data),
        request_id=request_id or "",
        labels=dict(labels or {}),
    )
    return (yield from _execution(Call("SignalWithStart", request)))
