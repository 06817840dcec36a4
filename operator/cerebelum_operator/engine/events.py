"""The events of an execution's history: every state change is one of these.

Events are plain frozen dataclasses; `kind` names them in the store and in
`cerebelum history`. `event_from_record` rebuilds one from its stored form.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

__all__ = [
    "EVENT_FORMAT",
    "ApprovalGranted",
    "ApprovalRejected",
    "ApprovalRequested",
    "ApprovalTimedOut",
    "ChildEnded",
    "ChildStarted",
    "DeadLetterRedriven",
    "Event",
    "ExecutionCancelRequested",
    "ExecutionCancelled",
    "ExecutionContinuedAsNew",
    "ExecutionEnding",
    "ExecutionFailed",
    "ExecutionPaused",
    "ExecutionReset",
    "ExecutionResumed",
    "ExecutionStarted",
    "ExecutionSucceeded",
    "FlowAssigned",
    "ForEachStarted",
    "ItemCompleted",
    "ItemFailed",
    "JumpLimitReached",
    "JumpTaken",
    "RecordedEvent",
    "SignalDelivered",
    "SignalReceived",
    "SignalWaitStarted",
    "SignalWaitTimedOut",
    "SleepEnded",
    "SleepStarted",
    "StepCompleted",
    "StepDeadLettered",
    "StepFailed",
    "StepHeld",
    "StepRetryAfter",
    "StepScheduled",
    "StepSkipped",
    "StepStarted",
    "VariablesSet",
    "WorkflowTaskCompleted",
    "WorkflowTaskFailed",
    "WorkflowTaskScheduled",
    "WorkflowTaskStarted",
    "event_from_record",
]

JSON = Any

# The newest event format this engine reads and writes. Raised whenever an event kind or field is
# added that an engine of the previous format would refuse; the store records the newest format
# its histories hold, and an engine that reads less refuses the store at start (a rollback is safe
# or refused, never half-run). 1: every event up to issue 18; 2: WorkflowTaskStarted.time_ms;
# 3: ExecutionPaused, ExecutionResumed, StepHeld, ExecutionReset and FlowAssigned (issue 19).
EVENT_FORMAT = 3


@dataclass(frozen=True, slots=True)
class Event:
    kind: ClassVar[str] = "Event"

    def to_data(self) -> dict[str, JSON]:
        """The fields by name, as stored. Values are shared, not copied (`asdict` deep-copied every
        payload on every append, 2 % of the engine's samples): an event is immutable, and every
        caller encodes the dict at once."""
        names = _DATA_FIELDS.get(type(self))
        if names is None:
            names = _DATA_FIELDS[type(self)] = tuple(f.name for f in fields(self))
        return {name: getattr(self, name) for name in names}

    def format_version(self) -> int:
        """The oldest event format that can read this event as stored (see `EVENT_FORMAT`)."""
        return 1


_DATA_FIELDS: dict[type[Event], tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: its place in the execution's history and when it happened."""

    seq: int
    at_ms: int
    event: Event


@dataclass(frozen=True, slots=True)
class ExecutionStarted(Event):
    kind: ClassVar[str] = "ExecutionStarted"
    workflow: str
    input: JSON
    spec_hash: str
    # When the workflow's `timeout` ends the execution (epoch ms); None without one, and in histories
    # written before workflow timeouts existed.
    deadline_ms: int | None = None
    # A child's parent and the parent's step that started it (None for a top-level execution).
    parent_id: str | None = None
    parent_step: str | None = None
    # Continue-as-new: the run that ended to start this one, the chain's first run, this run's number.
    # All optional with defaults: histories written before them load unchanged (issue 17).
    continued_from: str | None = None
    first_run_id: str | None = None
    run: int = 1
    # The request ids of the signals the previous run received (its last 1,000): a signal sent
    # again after the run continued as new is still a duplicate.
    carried_request_ids: list[str] | None = None


@dataclass(frozen=True, slots=True)
class StepScheduled(Event):
    """A task for a worker exists; visible (dispatchable) from visible_at_ms."""

    kind: ClassVar[str] = "StepScheduled"
    step: str
    attempt: int
    poll: int
    token: str
    task_queue: str
    visible_at_ms: int


@dataclass(frozen=True, slots=True)
class StepSkipped(Event):
    """The step's ``when`` was false as the timeline reached it: it did not run and has no result.

    New kind: histories written before it never hold one, so they load unchanged.
    """

    kind: ClassVar[str] = "StepSkipped"
    step: str


@dataclass(frozen=True, slots=True)
class StepStarted(Event):
    kind: ClassVar[str] = "StepStarted"
    step: str
    attempt: int
    token: str
    worker_id: str


@dataclass(frozen=True, slots=True)
class StepCompleted(Event):
    kind: ClassVar[str] = "StepCompleted"
    step: str
    attempt: int
    token: str
    output: JSON
    rule: str | None = None
    goto: str | None = None
    # A forEach step: its result is its items' outcomes in item order, folded from their events
    # (``output`` is None, so the history does not hold every item's output twice). New field:
    # histories written before it never set it, so they load unchanged.
    collected: bool = False


@dataclass(frozen=True, slots=True)
class StepFailed(Event):
    """An attempt failed (an error, a timeout, a rejected approval); retry_at_ms set when retried."""

    kind: ClassVar[str] = "StepFailed"
    step: str
    attempt: int
    token: str
    error_type: str
    message: str
    retryable: bool
    retry_at_ms: int | None = None
    continued: bool = False
    rule: str | None = None
    goto: str | None = None
    # The worker's stack trace, cut to limits.MAX_STACKTRACE; "" in histories written before it was kept.
    stacktrace: str = ""
    # The attempt's last heartbeat progress, handed to the step's next attempt (absent in old histories).
    last_progress: JSON = None


@dataclass(frozen=True, slots=True)
class ForEachStarted(Event):
    """A forEach step reached: its list, evaluated now, and the first items scheduled.

    Items ``0 .. min(concurrency, len(items)) - 1`` are scheduled by this event (tokens with its
    seq); each item's final outcome schedules the next unscheduled one (`ItemCompleted`,
    `ItemFailed`), so scheduling needs no event of its own: a 10,000-item step writes about
    10,000 events. New kind: histories written before it never hold one, so they load unchanged.
    """

    kind: ClassVar[str] = "ForEachStarted"
    step: str
    items: list[JSON]
    concurrency: int
    visible_at_ms: int | None = None  # when its first items may start (a retry's backoff); None: at once


@dataclass(frozen=True, slots=True)
class ItemCompleted(Event):
    """One item of a forEach step succeeded; the next unscheduled item is scheduled (this seq). New kind."""

    kind: ClassVar[str] = "ItemCompleted"
    step: str
    item: int
    attempt: int
    token: str
    output: JSON


@dataclass(frozen=True, slots=True)
class ItemFailed(Event):
    """An attempt of one item failed: retried at ``retry_at_ms`` (a new token with this seq), or
    for good (then its error is its place in a ``collect`` result, and the next item is scheduled;
    under failFast the step fails next). New kind."""

    kind: ClassVar[str] = "ItemFailed"
    step: str
    item: int
    attempt: int
    token: str
    error_type: str
    message: str
    retry_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class StepRetryAfter(Event):
    """The step asked to run again later (a poll), without counting a failure."""

    kind: ClassVar[str] = "StepRetryAfter"
    step: str
    attempt: int
    token: str
    retry_at_ms: int


@dataclass(frozen=True, slots=True)
class StepDeadLettered(Event):
    kind: ClassVar[str] = "StepDeadLettered"
    step: str
    attempt: int
    dead_letter_id: str
    error_type: str
    message: str


@dataclass(frozen=True, slots=True)
class DeadLetterRedriven(Event):
    """A redrive; ``deadline_ms`` is the workflow timeout started afresh from it (None without one)."""

    kind: ClassVar[str] = "DeadLetterRedriven"
    step: str
    dead_letter_id: str
    deadline_ms: int | None = None
    spec_hash: str | None = None  # the Workflow's spec the execution adopted with this redrive


@dataclass(frozen=True, slots=True)
class SleepStarted(Event):
    """A step sleeps: after its result (``ctx.sleep``), or as a timer step (``timer_step``), which
    the SleepEnded completes. ``timer_step`` is False in histories written before timer steps."""

    kind: ClassVar[str] = "SleepStarted"
    step: str
    timer_id: str
    wake_at_ms: int
    timer_step: bool = False


@dataclass(frozen=True, slots=True)
class SleepEnded(Event):
    kind: ClassVar[str] = "SleepEnded"
    step: str
    timer_id: str


@dataclass(frozen=True, slots=True)
class ApprovalRequested(Event):
    kind: ClassVar[str] = "ApprovalRequested"
    step: str
    approval_kind: str
    data: JSON
    timer_id: str | None
    timeout_at_ms: int | None
    token: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalGranted(Event):
    """The approval completes the step; rule and goto are set when a diverge rule jumps on it."""

    kind: ClassVar[str] = "ApprovalGranted"
    step: str
    approver: str
    payload: JSON
    rule: str | None = None
    goto: str | None = None
    request_id: str | None = None  # the Approval object's uid: a repeat delivery is recognised by it


@dataclass(frozen=True, slots=True)
class ApprovalRejected(Event):
    kind: ClassVar[str] = "ApprovalRejected"
    step: str
    approver: str
    reason: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalTimedOut(Event):
    kind: ClassVar[str] = "ApprovalTimedOut"
    step: str


@dataclass(frozen=True, slots=True)
class JumpTaken(Event):
    """A branch or diverge rule moved the timeline to another position."""

    kind: ClassVar[str] = "JumpTaken"
    rule: str
    from_step: str
    to_step: str


@dataclass(frozen=True, slots=True)
class JumpLimitReached(Event):
    """A backward goto matched but was not taken: its rule had jumped ``bound`` times (maxIterations).

    The timeline goes on as if the rule had not matched; this records that a loop was cut.
    New kind: histories written before it never hold one, so they load unchanged.
    """

    kind: ClassVar[str] = "JumpLimitReached"
    step: str
    target: str
    bound: int
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class VariablesSet(Event):
    """A step's ``set`` assigned workflow variables after it succeeded: ``values`` by name.

    New kind: histories written before it never hold one, so they load unchanged.
    """

    kind: ClassVar[str] = "VariablesSet"
    step: str
    values: dict[str, JSON]


@dataclass(frozen=True, slots=True)
class ExecutionEnding(Event):
    """The execution will end as ``outcome`` (Succeeded, Failed or Cancelled) once its
    ``handlers`` ran, in this order: the compensations of its completed steps, latest first,
    then its finally steps. What was in flight is cancelled. The terminal event follows them.

    New kind: histories written before it never hold one, so they load unchanged.
    """

    kind: ClassVar[str] = "ExecutionEnding"
    outcome: str
    handlers: list[str]
    reason: str | None = None  # of a failure or cancellation
    step: str | None = None  # the failed step
    output: JSON = None  # of a success
    rule: str | None = None  # that ended it early
    compensations: int = 0  # how many of the handlers are compensations (the first ones)


@dataclass(frozen=True, slots=True)
class ExecutionSucceeded(Event):
    """The end; ``rule`` names the branch or diverge rule that ended it early (``then: succeed``),
    None at the end of the timeline and in histories written before such rules."""

    kind: ClassVar[str] = "ExecutionSucceeded"
    output: JSON
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class ExecutionFailed(Event):
    kind: ClassVar[str] = "ExecutionFailed"
    reason: str
    step: str | None = None


@dataclass(frozen=True, slots=True)
class ExecutionCancelled(Event):
    kind: ClassVar[str] = "ExecutionCancelled"
    reason: str


@dataclass(frozen=True, slots=True)
class SignalReceived(Event):
    """A signal reached the execution: it waits in the queue until a signal step of its name takes it.

    New kind (issue 17): histories written before it never hold one, so they load unchanged.
    """

    kind: ClassVar[str] = "SignalReceived"
    name: str
    data: JSON
    sender: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class SignalWaitStarted(Event):
    """A signal step began to wait for a signal of ``name`` (none was queued)."""

    kind: ClassVar[str] = "SignalWaitStarted"
    step: str
    name: str
    timer_id: str | None = None
    timeout_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SignalDelivered(Event):
    """A signal step took the queued signal received at ``signal_seq``; a StepCompleted follows."""

    kind: ClassVar[str] = "SignalDelivered"
    step: str
    signal_seq: int


@dataclass(frozen=True, slots=True)
class SignalWaitTimedOut(Event):
    kind: ClassVar[str] = "SignalWaitTimedOut"
    step: str


@dataclass(frozen=True, slots=True)
class ChildStarted(Event):
    """A child step asked for its child execution (started by the outbox relay after this commits)."""

    kind: ClassVar[str] = "ChildStarted"
    step: str
    child_id: str
    workflow: str
    input: JSON
    abandon: bool = False  # onParentCancel: abandon


@dataclass(frozen=True, slots=True)
class ChildEnded(Event):
    """The child ended as ``phase``; the step's StepCompleted or StepFailed follows."""

    kind: ClassVar[str] = "ChildEnded"
    step: str
    child_id: str
    phase: str


@dataclass(frozen=True, slots=True)
class ExecutionContinuedAsNew(Event):
    """The run ended and ``next_id`` continues it with ``input`` (started by the outbox relay)."""

    kind: ClassVar[str] = "ExecutionContinuedAsNew"
    next_id: str
    input: JSON
    step: str | None = None


# -- code workflows (docs/code-workflows-protocol.md). New kinds: histories written before them never
# hold one; an engine of an earlier release refuses a history that does, naming the kind.


@dataclass(frozen=True, slots=True)
class WorkflowTaskScheduled(Event):
    """A code workflow's code has something new to see: a workflow task for its workers exists."""

    kind: ClassVar[str] = "WorkflowTaskScheduled"
    token: str
    attempt: int
    task_queue: str
    visible_at_ms: int


@dataclass(frozen=True, slots=True)
class WorkflowTaskStarted(Event):
    """A worker leased the workflow task: its time is what the code's ``now()`` gives."""

    kind: ClassVar[str] = "WorkflowTaskStarted"
    token: str
    worker_id: str
    # The code's `now()` when the worker ran it before the task was recorded (a continuation sent with
    # a step's result); None: the event's own time. Left out of the stored data when None.
    time_ms: int | None = None

    def to_data(self) -> dict[str, JSON]:
        data: dict[str, JSON] = {"token": self.token, "worker_id": self.worker_id}
        if self.time_ms is not None:
            data["time_ms"] = self.time_ms
        return data

    def format_version(self) -> int:
        return 1 if self.time_ms is None else 2


@dataclass(frozen=True, slots=True)
class WorkflowTaskCompleted(Event):
    """The code ran for the task and issued ``commands`` (normalised, each with its ``step``)."""

    kind: ClassVar[str] = "WorkflowTaskCompleted"
    token: str
    worker_id: str
    commands: list[JSON]


@dataclass(frozen=True, slots=True)
class WorkflowTaskFailed(Event):
    """The task produced nothing (non-determinism, a lost worker): it runs again at ``retry_at_ms``."""

    kind: ClassVar[str] = "WorkflowTaskFailed"
    token: str
    error_type: str
    message: str
    retry_at_ms: int
    stacktrace: str = ""


@dataclass(frozen=True, slots=True)
class ExecutionCancelRequested(Event):
    """A code workflow is asked to stop: its code sees a cancellation and decides how it ends."""

    kind: ClassVar[str] = "ExecutionCancelRequested"
    reason: str


@dataclass(frozen=True, slots=True)
class ExecutionPaused(Event):
    """A hold is put on the execution: it starts nothing new until every hold is lifted.

    ``source`` names who holds it ("user" for a pause asked through the API, "Execution" for a
    Kubernetes Execution's pause annotation), so one source's resume leaves another's hold in place.
    Steps queued but not started are taken back and held with the steps reached later.
    """

    kind: ClassVar[str] = "ExecutionPaused"
    source: str
    reason: str
    by: str

    def format_version(self) -> int:
        return 3


@dataclass(frozen=True, slots=True)
class ExecutionResumed(Event):
    """A hold is lifted; with none left, the held steps are scheduled (in the order they were held)."""

    kind: ClassVar[str] = "ExecutionResumed"
    source: str
    by: str

    def format_version(self) -> int:
        return 3


@dataclass(frozen=True, slots=True)
class StepHeld(Event):
    """The timeline reached the step (or its retry) while the execution was paused: it waits for the resume."""

    kind: ClassVar[str] = "StepHeld"
    step: str
    attempt: int
    poll: int
    visible_at_ms: int

    def format_version(self) -> int:
        return 3


@dataclass(frozen=True, slots=True)
class ExecutionReset(Event):
    """This run is a reset of ``from_id`` to ``step``: the steps before it are not run again, they
    keep the phases and results (and the workflow variables) the old run had there."""

    kind: ClassVar[str] = "ExecutionReset"
    from_id: str
    step: str
    results: dict[str, JSON]
    phases: dict[str, str]
    vars: dict[str, JSON] | None = None

    def format_version(self) -> int:
        return 3


@dataclass(frozen=True, slots=True)
class FlowAssigned(Event):
    """The execution's flow key and priority (flowControl), computed from its input at the start."""

    kind: ClassVar[str] = "FlowAssigned"
    key: str
    priority: int

    def format_version(self) -> int:
        return 3


_EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        ExecutionStarted,
        StepScheduled,
        StepSkipped,
        StepStarted,
        StepCompleted,
        StepFailed,
        StepRetryAfter,
        ForEachStarted,
        ItemCompleted,
        ItemFailed,
        StepDeadLettered,
        DeadLetterRedriven,
        SleepStarted,
        SleepEnded,
        ApprovalRequested,
        ApprovalGranted,
        ApprovalRejected,
        ApprovalTimedOut,
        JumpTaken,
        JumpLimitReached,
        VariablesSet,
        SignalReceived,
        SignalWaitStarted,
        SignalDelivered,
        SignalWaitTimedOut,
        ChildStarted,
        ChildEnded,
        ExecutionContinuedAsNew,
        ExecutionEnding,
        ExecutionSucceeded,
        ExecutionFailed,
        ExecutionCancelled,
        WorkflowTaskScheduled,
        WorkflowTaskStarted,
        WorkflowTaskCompleted,
        WorkflowTaskFailed,
        ExecutionCancelRequested,
        ExecutionPaused,
        ExecutionResumed,
        StepHeld,
        ExecutionReset,
        FlowAssigned,
    )
}


# Each kind's field names, worked out once: `fields` per event read was 5% of waking a sleeper.
_FIELD_NAMES = {kind: frozenset(f.name for f in fields(cls)) for kind, cls in _EVENT_TYPES.items()}


def event_from_record(kind: str, data: dict[str, JSON]) -> Event:
    """Rebuild an event from its stored kind and data; unknown fields are an error."""
    cls = _EVENT_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown event kind {kind!r}")
    extra = set(data) - _FIELD_NAMES[kind]
    if extra:
        raise ValueError(f"event {kind} has unknown fields {sorted(extra)}")
    return cls(**data)
