"""What can happen to an execution from outside: the inputs of `decide`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Approve",
    "Cancel",
    "ChildFinished",
    "Command",
    "Continuation",
    "Outcome",
    "OutcomeApproval",
    "OutcomeCancelled",
    "OutcomeFailure",
    "OutcomeRetryAfter",
    "OutcomeSleep",
    "OutcomeSuccess",
    "OutcomeWorkflowCommands",
    "Pause",
    "Redrive",
    "Reject",
    "ResetPoint",
    "Resume",
    "Signal",
    "Start",
    "TaskCompleted",
    "TaskStarted",
    "TaskTimedOut",
    "TimerFired",
]

JSON = Any


@dataclass(frozen=True, slots=True)
class OutcomeSuccess:
    output: JSON


@dataclass(frozen=True, slots=True)
class OutcomeFailure:
    error_type: str
    message: str
    retryable: bool = True
    stacktrace: str = ""  # as the worker sent it; `decide` cuts it to limits.MAX_STACKTRACE


@dataclass(frozen=True, slots=True)
class OutcomeRetryAfter:
    delay_ms: int


@dataclass(frozen=True, slots=True)
class OutcomeSleep:
    duration_ms: int
    output: JSON


@dataclass(frozen=True, slots=True)
class OutcomeApproval:
    approval_kind: str
    timeout_ms: int | None
    data: JSON


@dataclass(frozen=True, slots=True)
class OutcomeCancelled:
    message: str


@dataclass(frozen=True, slots=True)
class OutcomeWorkflowCommands:
    """What a code workflow's code issued for a workflow task: the commands as its worker sent them."""

    commands: JSON


Outcome = (
    OutcomeSuccess
    | OutcomeFailure
    | OutcomeRetryAfter
    | OutcomeSleep
    | OutcomeApproval
    | OutcomeCancelled
    | OutcomeWorkflowCommands
)


@dataclass(frozen=True, slots=True)
class ResetPoint:
    """What a reset run carries (engine/reset.py): the run it comes from, its first step, and the
    steps before that step as the old run left them."""

    from_id: str
    step: str
    results: dict[str, JSON]
    phases: dict[str, str]  # every step before the point: Succeeded, Failed (continued past) or Skipped
    vars: dict[str, JSON] | None


@dataclass(frozen=True, slots=True)
class Start:
    workflow: str
    input: JSON
    parent_id: str | None = None  # a child's parent execution, and its step that started it
    parent_step: str | None = None
    continued_from: str | None = None  # continue-as-new: the run this one continues
    first_run_id: str | None = None
    run: int = 1
    carried_request_ids: tuple[str, ...] = ()  # the previous run's signals' request ids
    reset: ResetPoint | None = None  # a reset run: start at this step, carrying the ones before it
    pauses: tuple[Pause, ...] = ()  # holds it starts with (a paused workflow, an Execution's annotation)


@dataclass(frozen=True, slots=True)
class TaskStarted:
    token: str
    worker_id: str


@dataclass(frozen=True, slots=True)
class TaskCompleted:
    """A worker's outcome for a task it holds.

    Accepted only while the attempt is leased, and, when ``worker_id`` is given, only from the
    worker that holds the lease. The worker service always gives it; None is for the engine's
    own in-process callers, which name no worker.
    """

    token: str
    outcome: Outcome
    worker_id: str | None = None
    progress: JSON = None  # the attempt's last heartbeat progress, kept for the next attempt if it fails
    continuation: Continuation | None = None  # a code step's success only


@dataclass(frozen=True, slots=True)
class Continuation:
    """What a code workflow's code issued when its worker ran it on a step's result, sent with that result.

    ``after_seq``: the ``WorkflowTaskStarted`` the worker's instance saw last; ``time_ms``: the
    instant the code ran at (its ``now()``). Recorded as a workflow task of its own, in the same
    commit as the step's completion, only when that result is all the code had not seen.
    """

    after_seq: int
    time_ms: int
    commands: JSON


@dataclass(frozen=True, slots=True)
class TaskTimedOut:
    token: str
    kind: Literal["start_to_close", "heartbeat", "lease"]
    progress: JSON = None  # the attempt's last heartbeat progress, kept for the next attempt


@dataclass(frozen=True, slots=True)
class TimerFired:
    timer_id: str


@dataclass(frozen=True, slots=True)
class Approve:
    step: str
    approver: str
    payload: JSON = None
    request_id: str | None = None  # who asked (an Approval object's uid), recorded in the event


@dataclass(frozen=True, slots=True)
class Reject:
    step: str
    approver: str
    reason: str = ""
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """Deliver a named signal; ``sender`` is the authenticated identity that sent it."""

    name: str
    data: JSON = None
    sender: str = ""
    request_id: str | None = None  # a signal sent again with the same id is delivered once


@dataclass(frozen=True, slots=True)
class ChildFinished:
    """A child execution ended (its ``child_id`` is its chain's first run): told by the outbox relay."""

    child_id: str
    phase: str
    output: JSON = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    reason: str = ""
    # A code workflow's code is shown a first cancel and may clean up; a forced one (a deleted
    # Execution object, a second cancel) stops the execution at once, as for a YAML workflow.
    force: bool = False


@dataclass(frozen=True, slots=True)
class Redrive:
    dead_letter_id: str
    # Run on the definition `decide` is given, which is the Workflow's current spec, from now on.
    adopt_spec: bool = False


@dataclass(frozen=True, slots=True)
class Pause:
    """Start nothing new until resumed (see `events.ExecutionPaused`); a second pause by one source is a duplicate."""

    reason: str = ""
    by: str = ""
    source: str = "user"


@dataclass(frozen=True, slots=True)
class Resume:
    """Lift ``source``'s pause; resuming what that source did not pause is a duplicate."""

    by: str = ""
    source: str = "user"


Command = (
    Start
    | TaskStarted
    | TaskCompleted
    | TaskTimedOut
    | TimerFired
    | Approve
    | Reject
    | Cancel
    | Redrive
    | Signal
    | ChildFinished
    | Pause
    | Resume
)
