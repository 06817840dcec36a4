"""The custom resources' shapes: the one source of the CRDs in `crds/`.

`scripts/gen_crds.py` turns these models (and `model.WorkflowSpec`) into structural CRD schemas.
The operator writes plain dicts (`kube.projection`); a unit test validates them against these
models, so a status field cannot drift from the CRD.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..model.limits import MAX_APPROVER, MAX_EXECUTION_ID, MAX_SIGNAL_NAME
from .names import MAX_NAME_LENGTH, NAME_PATTERN

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "ApprovalSpec",
    "ApprovalStatus",
    "ChildStatus",
    "Condition",
    "ExecutionSpec",
    "ExecutionStatus",
    "ParentStatus",
    "PendingApprovalStatus",
    "RecentEvent",
    "ScheduleFireStatus",
    "ScheduleStatus",
    "SignalSpec",
    "SignalStatus",
    "StepStatus",
    "WorkflowStatus",
]

GROUP = "cerebelum.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class _Resource(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Condition(_Resource):
    """The usual Kubernetes condition (metav1.Condition)."""

    type: str = Field(description="What the condition is about, e.g. Ready, Accepted, Succeeded.")
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024, description="A CamelCase cause."
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: str = Field(description="RFC 3339 time of the last change of status.")
    observed_generation: int | None = Field(default=None, description="The metadata.generation it was set from.")


class WorkflowStatus(_Resource):
    """Whether the Workflow compiled; executions of an Invalid workflow fail at once."""

    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready: True (Compiled), or False (Invalid) with the problems.",
    )
    observed_generation: int | None = Field(default=None, description="The metadata.generation last compiled.")
    steps: int | None = Field(default=None, description="How many steps the workflow has.")


class ExecutionSpec(_Resource):
    """One run of a Workflow in the same namespace. Immutable once created."""

    workflow: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=NAME_PATTERN,
        description="Name of a Workflow in this namespace (a name, not a path).",
    )
    input: Any = Field(default=None, description="The execution's input, checked against the workflow's schema.")


class StepStatus(_Resource):
    """One step as the engine last saw it."""

    name: str
    phase: str = Field(description="Pending, Scheduled, Running, Retrying, WaitingForApproval, Succeeded, ...")
    attempts: int = 0
    started_at: str | None = Field(default=None, description="RFC 3339.")
    finished_at: str | None = Field(default=None, description="RFC 3339.")
    error: str | None = Field(
        default=None, description="Why the step failed (on a Failed step only), cut to 512 characters."
    )
    previous_attempt_error: str | None = Field(
        default=None,
        description="The error of an earlier attempt of a step that ran again (Retrying, Running, Succeeded, ...),"
        " cut to 512 characters.",
    )
    progress: str | None = Field(
        default=None,
        description="The latest heartbeat progress (JSON text) of a running step, cut to 512 characters;"
        " the full value is in `cerebelum describe`.",
    )


class RecentEvent(_Resource):
    """One of the history's last events."""

    seq: int = Field(description="Its position in the history.")
    at: str = Field(description="RFC 3339 time it was recorded.")
    type: str = Field(description="The event's kind.")
    step: str | None = Field(default=None, description="The step it is about, if any.")


class PendingApprovalStatus(_Resource):
    """The approval step the execution waits on; an Approval naming it decides."""

    step: str
    requested_at: str | None = Field(default=None, description="RFC 3339.")
    timeout_at: str | None = Field(default=None, description="RFC 3339 time the approval step times out.")


class ParentStatus(_Resource):
    """The execution whose child step started this one (the Execution that owns this object)."""

    name: str | None = Field(default=None, description="The parent Execution's name, in this namespace.")
    execution_id: str | None = Field(default=None, description="The parent run's engine id.")
    step: str | None = Field(default=None, description="The parent's child step that started this execution.")


class ChildStatus(_Resource):
    """A child execution started by one of this execution's child steps."""

    step: str = Field(description="The child step that started it.")
    name: str = Field(description="The child's Execution object, in this namespace, owned by this one.")
    execution_id: str = Field(description="The child's engine id (the `cerebelum.io/execution-id` annotation).")
    workflow: str = Field(description="The child's Workflow, in this namespace.")
    phase: str = Field(description="Running, or how it ended: Succeeded, Failed, Cancelled, Abandoned.")


class ExecutionStatus(_Resource):
    """A bounded projection of the history; the full history stays in the store."""

    execution_id: str | None = Field(
        default=None,
        description="The engine's id: the Execution's uid (a child's: its `cerebelum.io/execution-id` annotation);"
        " for a continue-as-new chain, its first run's id.",
    )
    run: int | None = Field(
        default=None, description="Which run of a continue-as-new chain this status shows: the latest (1, 2, ...)."
    )
    run_id: str | None = Field(
        default=None, description="The engine id of the run shown: `executionId` for run 1, `<executionId>:run-<n>`."
    )
    phase: str | None = Field(
        default=None,
        description="Pending, Running, Sleeping, WaitingForApproval, WaitingForSignal, Succeeded, Failed or"
        " Cancelled: the latest run's.",
    )
    current_step: str | None = Field(default=None, description="The steps running or waiting, comma-separated.")
    started_at: str | None = Field(default=None, description="RFC 3339.")
    finished_at: str | None = Field(default=None, description="RFC 3339.")
    wake_at: str | None = Field(default=None, description="When a durable sleep ends.")
    pending_approval: PendingApprovalStatus | None = None
    steps: list[StepStatus] = Field(default_factory=list)
    steps_omitted: int | None = Field(default=None, description="Steps left out to keep the object small.")
    recent_events: list[RecentEvent] = Field(default_factory=list, description="The history's last few events.")
    event_count: int = Field(default=0, description="How many events the history holds.")
    output: Any = Field(default=None, description="The output, when its JSON fits the size cap.")
    output_truncated: bool | None = Field(default=None, description="True when the output is too large to show.")
    output_bytes: int | None = Field(default=None, description="The size of the output's JSON.")
    error: str | None = Field(default=None, description="Why the execution failed, cut when long.")
    workflow_task_error: str | None = Field(
        default=None,
        description="A code workflow whose workflow tasks fail (NonDeterminism: ...): retried until fixed code"
        " completes one; cut when long.",
    )
    parent: ParentStatus | None = Field(default=None, description="For a child execution: its parent.")
    children: list[ChildStatus] = Field(
        default_factory=list, description="Child executions: the running ones first, then the latest that ended."
    )
    child_count: int | None = Field(default=None, description="How many children the current run started.")
    children_omitted: int | None = Field(default=None, description="Children left out to keep the object small.")
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


class ApprovalSpec(_Resource):
    """A decision on an execution's approval step. Immutable; `approver` is set by admission."""

    execution: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=NAME_PATTERN,
        description="Name of an Execution in this namespace (a name, not a path).",
    )
    step: str = Field(min_length=1, max_length=63)
    decision: Literal["Approve", "Reject"] = "Approve"
    payload: Any = Field(default=None, description="Passed to later steps as the approval step's result.")
    reason: str = Field(default="", max_length=4096)
    approver: str | None = Field(
        default=None,
        max_length=MAX_APPROVER,
        description="Who decided; stamped from the request's user by the admission policy.",
    )


class ApprovalStatus(_Resource):
    """Whether the operator handed the decision to the engine; it does so once."""

    phase: Literal["Applied", "Refused"] | None = Field(
        default=None, description="Applied: the engine took the decision; Refused: it could not (see message)."
    )
    message: str | None = None
    approver: str | None = Field(default=None, description="The approver recorded in the history.")
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


class SignalSpec(_Resource):
    """A named signal sent to an Execution in this namespace. Immutable; `sender` is set by admission."""

    execution: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=NAME_PATTERN,
        description="Name of an Execution in this namespace (a name, not a path); a continue-as-new chain's"
        " latest run receives it.",
    )
    name: str = Field(
        min_length=1,
        max_length=MAX_SIGNAL_NAME,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$",
        description="The signal's name, as a signal step of the execution's workflow waits for it.",
    )
    data: Any = Field(
        default=None, description="The signal's data (JSON), within the payload limit (--max-payload-bytes)."
    )
    sender: str | None = Field(
        default=None,
        max_length=MAX_APPROVER,
        description="Who sent it; stamped from the request's user by the admission policy.",
    )


class SignalStatus(_Resource):
    """Whether the operator delivered the signal to the engine; it does so once."""

    phase: Literal["Delivered", "Refused"] | None = Field(
        default=None,
        description="Delivered: queued in the execution until a signal step takes it; Refused: it could not be"
        " (see message).",
    )
    message: str | None = None
    sender: str | None = Field(default=None, description="The sender recorded in the history.")
    run_id: str | None = Field(
        default=None, max_length=MAX_EXECUTION_ID, description="The engine id of the run it was delivered to."
    )
    handled_at: str | None = Field(default=None, description="RFC 3339 time it was delivered or refused.")
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


class ScheduleFireStatus(_Resource):
    """One settled due time of a Schedule (or several consecutive missed ones)."""

    due_time: str = Field(description="RFC 3339 due time (the last one, for several missed ones).")
    fired_at: str = Field(description="RFC 3339 time it was settled.")
    outcome: Literal["started", "triggered", "skipped", "buffered", "missed", "failed"] = Field(
        description="started, triggered (by hand), skipped (overlap), buffered (bufferOne), missed (later than"
        " the catch-up window) or failed (the start was refused)."
    )
    execution_id: str | None = Field(default=None, description="The engine id of the execution it started.")
    execution: str | None = Field(
        default=None, description="The Execution object of that execution, in this namespace, owned by this Schedule."
    )
    reason: str | None = Field(default=None, description="Why it was skipped, missed or failed, cut when long.")
    count: int | None = Field(default=None, description="How many consecutive due times were missed, when more than 1.")


class ScheduleStatus(_Resource):
    """The schedule as the engine keeps it: the last and next fire times, counts and the latest fires."""

    schedule: str | None = Field(
        default=None, description="The timing in one line: the cron expression, or every <interval>."
    )
    paused: bool | None = Field(default=None, description="Whether it fires nothing (spec.paused, as accepted).")
    note: str | None = Field(default=None, description="Why it is paused.")
    last_fire_time: str | None = Field(default=None, description="RFC 3339 time the last execution was started.")
    last_due_time: str | None = Field(default=None, description="RFC 3339 due time of the last execution started.")
    last_execution: str | None = Field(default=None, description="The engine id of the last execution started.")
    next_fire_time: str | None = Field(
        default=None,
        description="RFC 3339 time it fires next (the due time plus its jitter); none when paused or over.",
    )
    next_due_time: str | None = Field(default=None, description="RFC 3339 next due time.")
    started: int | None = Field(default=None, description="Executions started (by due times and by hand).")
    skipped: int | None = Field(default=None, description="Due times the overlap policy skipped.")
    missed: int | None = Field(default=None, description="Due times later than the catch-up window, dropped.")
    failed: int | None = Field(default=None, description="Starts the engine refused.")
    recent_fires: list[ScheduleFireStatus] = Field(
        default_factory=list, description="The latest settled due times, oldest first (at most 10)."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready: True (Scheduled), or False (InvalidSpec, WorkflowNotFound, WorkflowInvalid) saying why.",
    )
    observed_generation: int | None = None
