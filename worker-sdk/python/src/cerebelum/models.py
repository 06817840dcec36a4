"""What the clients return: small frozen dataclasses with JSON parsed and times as UTC datetimes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cerebelum.jsoncodec import loads
from cerebelum.times import instant
from cerebelum.v1 import workflow_pb2

__all__ = [
    "TERMINAL_PHASES",
    "BulkOutcome",
    "ChildExecution",
    "DeadLetter",
    "Execution",
    "ExecutionList",
    "ExecutionPause",
    "HistoryEvent",
    "JumpLimit",
    "PendingApproval",
    "QueuedSignal",
    "SignalWait",
    "StepStatus",
    "WorkflowInfo",
]

TERMINAL_PHASES = frozenset({"Succeeded", "Failed", "Cancelled", "ContinuedAsNew"})
"""Execution phases after which nothing changes (a run that continued as new ended: its chain
goes on in ``continued_as``)."""


@dataclass(frozen=True, slots=True)
class ItemsProgress:
    """A running forEach step's items: all of them, those settled (succeeded or failed for good),
    those failed for good, and those with a task now (running, queued or waiting to retry)."""

    total: int
    done: int
    failed: int
    in_flight: int


@dataclass(frozen=True, slots=True)
class StepStatus:
    """One step of an execution. ``phase`` is Pending, Scheduled, Running, Retrying,
    WaitingForApproval, Succeeded, Failed, Skipped or Cancelled. ``progress`` is the running
    attempt's latest heartbeat progress; ``waiting_hint`` says why a step that waits long for a
    worker may never get one (no worker polls its queue, or none serves the step)."""

    name: str
    phase: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None
    last_stacktrace: str | None = None
    """The stack trace the worker sent with the failure in ``last_error``, if any."""
    progress: Any = None
    waiting_hint: str | None = None
    items: ItemsProgress | None = None
    """Where a running forEach step stands; ``None`` for any other step, and once it ended."""

    @classmethod
    def from_proto(cls, step: workflow_pb2.StepInfo) -> StepStatus:
        return cls(
            name=step.name,
            phase=step.phase,
            attempts=step.attempts,
            started_at=instant(step, "started_at"),
            finished_at=instant(step, "finished_at"),
            last_error=step.last_error or None,
            last_stacktrace=step.last_stacktrace or None,
            progress=loads(step.progress_json),
            waiting_hint=step.waiting_hint or None,
            items=(
                ItemsProgress(step.items.total, step.items.done, step.items.failed, step.items.in_flight)
                if step.HasField("items")
                else None
            ),
        )


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """A step waiting for ``approve``/``reject``; ``timeout_at`` is ``None`` without a timeout."""

    step: str
    kind: str
    data: Any
    timeout_at: datetime | None

    @classmethod
    def from_proto(cls, approval: workflow_pb2.PendingApproval) -> PendingApproval:
        return cls(
            step=approval.step,
            kind=approval.kind,
            data=loads(approval.data_json),
            timeout_at=instant(approval, "timeout_at"),
        )


@dataclass(frozen=True, slots=True)
class JumpLimit:
    """A loop cut at its bound: rule ``rule`` of step ``step`` matched ``times`` more times after
    jumping back to ``target`` ``bound`` times (its ``maxIterations``), and the execution went on."""

    rule: str
    step: str
    target: str
    bound: int
    times: int

    @classmethod
    def from_proto(cls, cut: workflow_pb2.JumpLimit) -> JumpLimit:
        return cls(rule=cut.rule, step=cut.step, target=cut.target, bound=cut.bound, times=cut.times)


# -- signals, children and continue-as-new (issue 17) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class QueuedSignal:
    """A signal the execution received and no signal step has taken yet; ``data`` is parsed JSON,
    ``sender`` the authenticated identity that sent it."""

    name: str
    data: Any
    sender: str
    received_at: datetime | None

    @classmethod
    def from_proto(cls, signal: workflow_pb2.QueuedSignal) -> QueuedSignal:
        return cls(
            name=signal.name,
            data=loads(signal.data_json),
            sender=signal.sender,
            received_at=instant(signal, "received_at"),
        )


@dataclass(frozen=True, slots=True)
class SignalWait:
    """A signal step waiting now for the signal ``name``; ``timeout_at`` is ``None`` without a timeout."""

    step: str
    name: str
    timeout_at: datetime | None

    @classmethod
    def from_proto(cls, wait: workflow_pb2.SignalWait) -> SignalWait:
        return cls(step=wait.step, name=wait.name, timeout_at=instant(wait, "timeout_at"))


@dataclass(frozen=True, slots=True)
class ChildExecution:
    """An execution the step ``step`` started as a child. ``phase`` is Running, Succeeded, Failed,
    Cancelled or Abandoned as the parent last heard: :meth:`Client.get` of ``id`` tells more."""

    step: str
    id: str
    workflow: str
    phase: str

    @classmethod
    def from_proto(cls, child: workflow_pb2.ChildExecution) -> ChildExecution:
        return cls(step=child.step, id=child.id, workflow=child.workflow, phase=child.phase)


@dataclass(frozen=True, slots=True)
class ExecutionPause:
    """A pause holding an execution: ``source`` is "user" (:meth:`Client.pause`), "workflow", "concurrency"
    or "Execution" (a Kubernetes Execution's ``cerebelum.io/paused`` annotation); ``by`` the
    authenticated caller, "" without a token."""

    source: str
    reason: str
    by: str
    at: datetime | None

    @classmethod
    def from_proto(cls, pause: workflow_pb2.ExecutionPause) -> ExecutionPause:
        return cls(source=pause.source, reason=pause.reason, by=pause.by, at=instant(pause, "at"))


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    name: str
    spec: dict[str, Any]
    version: int
    updated_at: datetime | None
    pause: ExecutionPause | None = None
    """Set while the workflow is paused: its new executions start held (phase Paused)."""

    @classmethod
    def from_proto(cls, info: workflow_pb2.WorkflowInfo) -> WorkflowInfo:
        spec = loads(info.spec_json) or {}
        pause = ExecutionPause.from_proto(info.pause) if info.HasField("pause") else None
        return cls(name=info.name, spec=spec, version=info.version, updated_at=instant(info, "updated_at"), pause=pause)


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    """What a bulk action did to one execution: ``result`` is "done", "unchanged" or "failed" (``error`` says why)."""

    id: str
    result: str
    error: str | None

    @classmethod
    def from_proto(cls, outcome: workflow_pb2.BulkOutcome) -> BulkOutcome:
        return cls(id=outcome.id, result=outcome.result, error=outcome.error or None)


@dataclass(frozen=True, slots=True)
class Execution:
    """One run of a workflow. ``phase`` is Pending, Running, Sleeping, WaitingForApproval,
    WaitingForSignal, Paused, Succeeded, Failed, Cancelled or ContinuedAsNew; ``input``/``output``
    are parsed JSON (``None`` when empty)."""

    id: str
    workflow: str
    phase: str
    current_steps: tuple[str, ...]
    input: Any
    output: Any
    error: str | None
    created_at: datetime | None
    updated_at: datetime | None
    wake_at: datetime | None
    event_count: int
    steps: tuple[StepStatus, ...]
    pending_approvals: tuple[PendingApproval, ...]
    jump_limits: tuple[JumpLimit, ...] = ()
    """Loops cut at their ``maxIterations``: empty when every loop ended by its own condition."""
    deadline: datetime | None = None
    """When the workflow's ``timeout`` fails the execution; ``None`` without one, or once it ended."""
    vars: Any = None
    """The workflow variables as they are now (a dict); ``None`` when the workflow declares none."""
    ending: str | None = None
    """While its compensation and finally steps run: how it will end (Succeeded, Failed or
    Cancelled); ``None`` otherwise."""
    queued_signals: tuple[QueuedSignal, ...] = ()
    """Signals received and not yet taken by a signal step, oldest first (the order steps take them)."""
    signal_waits: tuple[SignalWait, ...] = ()
    """The signal steps waiting now, with the signal each waits for."""
    parent_id: str | None = None
    """The execution that started this one as a child; ``None`` for a top-level execution."""
    parent_step: str | None = None
    """The parent's step that started this one; ``None`` for a top-level execution."""
    children: tuple[ChildExecution, ...] = ()
    """The child executions this one started, oldest first."""
    continued_from: str | None = None
    """The run that ended by continuing as new into this one; ``None`` for a chain's first run."""
    continued_as: str | None = None
    """The run this one continued as when it ended (phase ContinuedAsNew); ``None`` otherwise."""
    first_run_id: str = ""
    """The first run of this continue-as-new chain: the id to follow a chain by (this run's own id
    when it is the first)."""
    run: int = 1
    """This run's number in its chain, 1 for the first."""
    workflow_task_error: str | None = None
    """A code workflow whose workflow tasks fail (``"NonDeterminism: …"``): retried until one
    completes, such as when fixed code is deployed; ``None`` otherwise."""
    pauses: tuple[ExecutionPause, ...] = ()
    """The pauses holding it (phase Paused): it starts nothing new until each is lifted."""
    reset_from: str | None = None
    """A reset run (:meth:`Client.reset`): the execution it was reset from; ``None`` otherwise."""
    labels: dict[str, str] = field(default_factory=dict)
    """The labels it was started with (what :meth:`Client.list` filters by); empty without any, and
    from an engine before labels."""

    @property
    def is_terminal(self) -> bool:
        """True when the execution Succeeded, Failed or was Cancelled."""
        return self.phase in TERMINAL_PHASES

    def step(self, name: str) -> StepStatus | None:
        """The status of the step called ``name``, or ``None``."""
        return next((step for step in self.steps if step.name == name), None)

    @classmethod
    def from_proto(cls, info: workflow_pb2.ExecutionInfo) -> Execution:
        return cls(
            id=info.id,
            workflow=info.workflow,
            phase=info.phase,
            current_steps=tuple(info.current_steps),
            input=loads(info.input_json),
            output=loads(info.output_json),
            error=info.error or None,
            created_at=instant(info, "created_at"),
            updated_at=instant(info, "updated_at"),
            wake_at=instant(info, "wake_at"),
            event_count=info.event_count,
            steps=tuple(StepStatus.from_proto(step) for step in info.steps),
            pending_approvals=tuple(PendingApproval.from_proto(a) for a in info.pending_approvals),
            jump_limits=tuple(JumpLimit.from_proto(cut) for cut in info.jump_limits),
            deadline=instant(info, "deadline"),
            vars=loads(info.vars_json),
            ending=info.ending or None,
            queued_signals=tuple(QueuedSignal.from_proto(signal) for signal in info.queued_signals),
            signal_waits=tuple(SignalWait.from_proto(wait) for wait in info.signal_waits),
            parent_id=info.parent_id or None,
            parent_step=info.parent_step or None,
            children=tuple(ChildExecution.from_proto(child) for child in info.children),
            continued_from=info.continued_from or None,
            continued_as=info.continued_as or None,
            # An engine before signals (issue 17) sends neither: no chain then, so every run is its own first.
            first_run_id=info.first_run_id or info.id,
            run=info.run or 1,
            workflow_task_error=info.workflow_task_error or None,
            pauses=tuple(ExecutionPause.from_proto(pause) for pause in info.pauses),
            reset_from=info.reset_from or None,
            labels=dict(info.labels),
        )


@dataclass(frozen=True, slots=True)
class ExecutionList:
    """One page of :meth:`Client.list_page`: executions newest first, and the token of the next page."""

    executions: tuple[Execution, ...]
    next_page_token: str | None
    """Pass it as ``page_token`` (with the same filters) for the next page; ``None`` after the last."""


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    seq: int
    type: str
    at: datetime | None
    data: Any

    @classmethod
    def from_proto(cls, event: workflow_pb2.HistoryEvent) -> HistoryEvent:
        return cls(seq=event.seq, type=event.type, at=instant(event, "at"), data=loads(event.data_json))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A step attempt that failed for good and can be redriven."""

    id: str
    execution_id: str
    step: str
    attempt: int
    error: str | None
    created_at: datetime | None

    @classmethod
    def from_proto(cls, letter: workflow_pb2.DeadLetter) -> DeadLetter:
        return cls(
            id=letter.id,
            execution_id=letter.execution_id,
            step=letter.step,
            attempt=letter.attempt,
            error=letter.error or None,
            created_at=instant(letter, "created_at"),
        )
