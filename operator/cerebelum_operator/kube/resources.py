"""The custom resources' shapes: the one source of the CRDs in `crds/`.

`scripts/gen_crds.py` turns these models (and `model.WorkflowSpec`) into structural CRD schemas.
The operator writes plain dicts (`kube.projection`); a unit test validates them against these
models, so a status field cannot drift from the CRD.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..model.limits import MAX_APPROVER
from .names import MAX_NAME_LENGTH, NAME_PATTERN

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "ApprovalSpec",
    "ApprovalStatus",
    "Condition",
    "ExecutionSpec",
    "ExecutionStatus",
    "PendingApprovalStatus",
    "RecentEvent",
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
        default_factory=list, description="Ready: True (Compiled), or False (Invalid) with the problems."
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


class ExecutionStatus(_Resource):
    """A bounded projection of the history; the full history stays in the store."""

    execution_id: str | None = Field(default=None, description="The engine's id: the Execution's uid.")
    phase: str | None = Field(
        default=None, description="Pending, Running, Sleeping, WaitingForApproval, Succeeded, Failed or Cancelled."
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
