"""An execution's state, folded from its history one event at a time.

`apply_event` is the only way state changes, so replaying the history always
rebuilds exactly the state the engine had: that is how resurrection works.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar

from ..model import StepConfig, WorkflowDefinition, code_step_config
from ..model.limits import json_size
from .events import (
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    ApprovalTimedOut,
    ChildEnded,
    ChildStarted,
    DeadLetterRedriven,
    ExecutionCancelled,
    ExecutionCancelRequested,
    ExecutionContinuedAsNew,
    ExecutionEnding,
    ExecutionFailed,
    ExecutionPaused,
    ExecutionReset,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSucceeded,
    FlowAssigned,
    ForEachStarted,
    ItemCompleted,
    ItemFailed,
    JumpLimitReached,
    JumpTaken,
    RecordedEvent,
    SignalDelivered,
    SignalReceived,
    SignalWaitStarted,
    SignalWaitTimedOut,
    SleepEnded,
    SleepStarted,
    StepCompleted,
    StepDeadLettered,
    StepFailed,
    StepHeld,
    StepRetryAfter,
    StepScheduled,
    StepSkipped,
    StepStarted,
    VariablesSet,
    WorkflowTaskCompleted,
    WorkflowTaskFailed,
    WorkflowTaskScheduled,
    WorkflowTaskStarted,
)
from .ids import DEADLINE_STEP, TaskToken, TimerId, TimerKind

__all__ = [
    "ChildLink",
    "Ending",
    "ExecutionPhase",
    "ExecutionState",
    "FanOut",
    "HeldStep",
    "Hold",
    "JumpLimit",
    "LiveItem",
    "PendingApproval",
    "PendingSleep",
    "QueuedSignal",
    "SignalWaiting",
    "StepPhase",
    "StepState",
    "WorkflowTask",
    "apply_event",
    "approval_result",
    "fold",
    "result_entry_size",
    "variables_entry_size",
]

JSON = Any
_T = TypeVar("_T")


class ExecutionPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SLEEPING = "Sleeping"
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    WAITING_FOR_SIGNAL = "WaitingForSignal"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    CONTINUED_AS_NEW = "ContinuedAsNew"  # the run ended; its next run carries the execution on
    PAUSED = "Paused"  # shown only: a hold is on it (`ExecutionState.holds`); what runs may finish
    QUEUED = "Queued"  # shown only: the one hold is flow control's, waiting for a slot of its key

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = {
    ExecutionPhase.SUCCEEDED,
    ExecutionPhase.FAILED,
    ExecutionPhase.CANCELLED,
    ExecutionPhase.CONTINUED_AS_NEW,
}


class StepPhase(StrEnum):
    PENDING = "Pending"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    RETRYING = "Retrying"
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    WAITING_FOR_SIGNAL = "WaitingForSignal"
    SLEEPING = "Sleeping"  # a timer step waiting to wake
    HELD = "Held"  # reached while the execution was paused: scheduled when it resumes
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    CANCELLED = "Cancelled"


_IN_FLIGHT = frozenset({StepPhase.SCHEDULED, StepPhase.RUNNING, StepPhase.RETRYING})
_QUEUED = frozenset({StepPhase.SCHEDULED, StepPhase.RETRYING})  # a worker has not started it
# On the engine or someone outside, not a worker.
_WAITING = frozenset({StepPhase.WAITING_FOR_APPROVAL, StepPhase.WAITING_FOR_SIGNAL, StepPhase.SLEEPING})


@dataclass(slots=True)
class StepState:
    phase: StepPhase = StepPhase.PENDING
    attempt: int = 0
    poll: int = 0
    token: str | None = None
    worker_id: str | None = None
    started_at_ms: int | None = None
    finished_at_ms: int | None = None
    last_error: str | None = None
    last_stacktrace: str = ""  # of the failure in last_error, when its worker sent one
    settled: bool = False
    total_attempts: int = 0
    last_progress: JSON = None  # the last failed attempt's heartbeat progress, for the next attempt
    # Runs of the step in this execution: 1 for the first, +1 each time a jump or a redrive starts
    # it over. Retries and retry_after polls belong to the run they retry (the idempotency key).
    run: int = 0
    visible_at_ms: int = 0  # its task's, while queued: a held retry keeps its backoff

    @property
    def in_flight(self) -> bool:
        return self.phase in _IN_FLIGHT


@dataclass(frozen=True, slots=True)
class JumpLimit:
    """A loop cut at its bound: the rule's goto from ``step`` to ``target`` was refused after ``bound`` jumps."""

    step: str
    target: str
    bound: int
    times: int = 1  # how often it was refused


@dataclass(frozen=True, slots=True)
class Ending:
    """An execution running its compensation and finally steps before it ends (ExecutionEnding)."""

    outcome: ExecutionPhase
    handlers: tuple[str, ...]
    reason: str | None
    step: str | None
    output: JSON
    rule: str | None
    compensations: int


@dataclass(frozen=True, slots=True)
class Hold:
    """Why an execution is paused, and who asked (see `ExecutionPaused`)."""

    reason: str
    by: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class HeldStep:
    """A step the timeline reached while paused (or whose queued task a pause took back)."""

    attempt: int
    poll: int
    visible_at_ms: int


@dataclass(frozen=True, slots=True)
class LiveItem:
    """An item of a forEach step with a task: its attempt, its token, when the task is visible, and
    the seq of the event that scheduled it (`decide` schedules the tasks of the event it emitted)."""

    attempt: int
    token: str
    visible_at_ms: int
    seq: int
    held: bool = False  # made while paused: its task is scheduled when the execution resumes


@dataclass(slots=True)
class FanOut:
    """A forEach step running: its items, those in flight, and the outcomes so far (in item order).

    Which items run is folded from the events alone: `ForEachStarted` schedules the first
    ``concurrency`` of them, each item's final outcome the next one, a retried attempt its own
    next attempt. ``outcomes[i]`` is meaningful once ``settled[i]`` is 1 (a bytearray: a copy per
    decision costs little even at 10,000 items).
    """

    items: list[JSON]
    concurrency: int
    collect: bool
    next_item: int = 0  # the first item not scheduled yet
    live: dict[int, LiveItem] = field(default_factory=dict)
    outcomes: list[JSON] = field(default_factory=list)
    settled: bytearray = field(default_factory=bytearray)
    done: int = 0
    failed: int = 0
    outcome_bytes: int = 2  # the JSON list they make: "[]" and a separator per item
    first_failure: tuple[int, str, str] | None = None  # (item, error type, message)

    def copy(self) -> FanOut:
        return replace(self, live=dict(self.live), outcomes=list(self.outcomes), settled=bytearray(self.settled))

    @property
    def finished(self) -> bool:
        return self.done == len(self.items)


@dataclass(frozen=True, slots=True)
class PendingSleep:
    timer_id: str
    wake_at_ms: int


@dataclass(frozen=True, slots=True)
class PendingApproval:
    approval_kind: str
    data: JSON
    timer_id: str | None
    timeout_at_ms: int | None
    token: str | None
    requested_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class QueuedSignal:
    """A signal received and not taken yet; ``seq`` is its SignalReceived's."""

    seq: int
    name: str
    data: JSON
    sender: str
    received_at_ms: int
    size: int


@dataclass(frozen=True, slots=True)
class SignalWaiting:
    """A signal step waiting; ``seq`` (its SignalWaitStarted's) orders steps waiting for one name."""

    name: str
    seq: int
    timer_id: str | None
    timeout_at_ms: int | None


@dataclass(frozen=True, slots=True)
class ChildLink:
    """A child this execution started: ``phase`` as the parent last heard (Running until it ends)."""

    step: str
    child_id: str
    workflow: str
    phase: str = "Running"
    abandon: bool = False


@dataclass(frozen=True, slots=True)
class WorkflowTask:
    """A code workflow's workflow task, scheduled or (``started_seq`` set) held by ``worker_id``."""

    token: str
    attempt: int
    worker_id: str | None = None
    started_seq: int = 0


@dataclass(slots=True)
class ExecutionState:
    execution_id: str
    workflow: str = ""
    input: JSON = None
    started: bool = False
    phase: ExecutionPhase = ExecutionPhase.PENDING
    position: int = -1
    steps: dict[str, StepState] = field(default_factory=dict)
    results: dict[str, JSON] = field(default_factory=dict)
    # What the next task would carry, kept as results change so the size rule costs O(1) per step.
    result_sizes: dict[str, int] = field(default_factory=dict)
    carried_bytes: int = 0
    finished_tokens: set[str] = field(default_factory=set)
    jump_counts: dict[str, int] = field(default_factory=dict)
    jump_limits: dict[str, JumpLimit] = field(default_factory=dict)  # by rule (or "step->target")
    pending_jump: tuple[str, str, str] | None = None
    sleeps: dict[str, PendingSleep] = field(default_factory=dict)
    approvals: dict[str, PendingApproval] = field(default_factory=dict)
    dead_letters: dict[str, str] = field(default_factory=dict)
    last_worker_id: str | None = None
    vars: dict[str, JSON] = field(default_factory=dict)  # the workflow's variables, kept across jumps
    vars_bytes: int = 0  # what they add to a task's arguments (0 when the workflow declares none)
    # Compensable steps that completed, in the order of their last completion (each once).
    completed: list[str] = field(default_factory=list)
    fan_outs: dict[str, FanOut] = field(default_factory=dict)  # forEach steps running, by step
    # Signals received and not taken yet, oldest first; their request ids (all, for duplicates).
    # These two and `children` grow with the execution: `clone` shares them, so `apply_event`
    # replaces them instead of changing them in place (a decision copies none of them).
    signals: list[QueuedSignal] = field(default_factory=list)
    signal_bytes: int = 0
    signal_request_ids: dict[str, None] = field(default_factory=dict)  # in the order received
    signal_waits: dict[str, SignalWaiting] = field(default_factory=dict)  # by step
    children: list[ChildLink] = field(default_factory=list)  # every child started, oldest first
    live_children: dict[str, int] = field(default_factory=dict)  # step -> index in children
    parent_id: str | None = None
    parent_step: str | None = None
    continued_from: str | None = None
    continued_as: str | None = None
    first_run_id: str | None = None  # None: this is the chain's first run (or there is no chain)
    run: int = 1
    ending: Ending | None = None
    compensated: bool = False  # an ending ran compensations: the timeline cannot be redriven
    deadline_ms: int | None = None  # the workflow timeout's deadline
    deadline_timer_id: str | None = None
    output: JSON = None
    error: str | None = None
    # A code workflow (engine/code_decisions.py): its live commands' steps and their arguments (a
    # settled one is dropped), the next command id, whether the code has events to see that no
    # workflow task started since, the workflow task, and the failures of the last ones.
    code_steps: dict[str, StepConfig] = field(default_factory=dict)
    code_args: dict[str, JSON] = field(default_factory=dict)
    next_command_id: int = 1
    code_pending: bool = False
    workflow_task: WorkflowTask | None = None
    workflow_task_failures: int = 0
    workflow_task_error: str | None = None  # "<type>: <message>" while its workflow tasks fail
    # The worker that completed the last workflow task and that task's WorkflowTaskStarted seq: the
    # next task carries only the history after it when the same worker takes it.
    sticky: tuple[str, int] | None = None
    code_time_ms: int = 0  # the code's now() at its last workflow task: never goes back
    cancel_requested: str | None = None  # the reason, once a cancel was asked of the code
    # Pauses in force, by source (ExecutionPaused): while any is, nothing new starts, and the
    # steps reached wait in `held_steps`, in the order they were held.
    holds: dict[str, Hold] = field(default_factory=dict)
    held_steps: dict[str, HeldStep] = field(default_factory=dict)
    reset_from: str | None = None  # a reset run: the execution it was reset from (ExecutionReset)
    flow_key: str | None = None  # flowControl's key and priority (FlowAssigned); None without it
    priority: int = 0
    created_at_ms: int = 0
    updated_at_ms: int = 0
    last_seq: int = 0

    # Names of the steps this copy may change in place; None: all of them (a state of its own).
    owned_steps: set[str] | None = field(default=None, repr=False, compare=False)

    def clone(self) -> ExecutionState:
        """A copy `decide` can change freely.

        Step states are shared with the original until first touched through `step()`
        (copy on write): a decision changes one or two steps, and copying all of them made
        every decision cost O(steps) for long timelines.
        """
        copy = _shallow_copy(self)
        copy.steps = dict(self.steps)
        copy.owned_steps = set()
        copy.results = dict(self.results)
        copy.result_sizes = dict(self.result_sizes)
        copy.finished_tokens = set(self.finished_tokens)
        copy.jump_counts = dict(self.jump_counts)
        copy.jump_limits = dict(self.jump_limits)
        copy.sleeps = dict(self.sleeps)
        copy.approvals = dict(self.approvals)
        copy.dead_letters = dict(self.dead_letters)
        copy.vars = dict(self.vars)
        copy.completed = list(self.completed)
        copy.fan_outs = {name: fan.copy() for name, fan in self.fan_outs.items()}
        copy.signal_waits = dict(self.signal_waits)
        copy.live_children = dict(self.live_children)
        copy.code_steps = dict(self.code_steps)
        copy.code_args = dict(self.code_args)
        copy.holds = dict(self.holds)
        copy.held_steps = dict(self.held_steps)
        return copy

    def step(self, name: str) -> StepState:
        """The step's state, to read or change: a private copy if it was shared with the original."""
        state = self.steps.get(name)
        owned = self.owned_steps
        if state is None:
            state = self.steps[name] = StepState()
        elif owned is not None and name not in owned:
            state = self.steps[name] = _copy_step(state)
        else:
            return state
        if owned is not None:
            owned.add(name)
        return state

    def set_result(self, name: str, value: JSON) -> None:
        self.drop_result(name)
        size = result_entry_size(name, value)
        self.results[name] = value
        self.result_sizes[name] = size
        self.carried_bytes += size

    def drop_result(self, name: str) -> None:
        self.results.pop(name, None)
        self.carried_bytes -= self.result_sizes.pop(name, 0)

    def reset_step(self, name: str) -> None:
        """Forget the step's progress (a goto back over it), keeping its attempt and run counts."""
        self.fan_outs.pop(name, None)
        old = self.steps.get(name)
        self.steps[name] = StepState(total_attempts=old.total_attempts, run=old.run) if old else StepState()
        if self.owned_steps is not None:
            self.owned_steps.add(name)

    def display_phase(self) -> ExecutionPhase:
        """Running, or what the execution waits for when nothing runs."""
        if self.phase.terminal or not self.started:
            return self.phase
        if self.holds:
            return ExecutionPhase.QUEUED if self.holds.keys() == {"concurrency"} else ExecutionPhase.PAUSED
        if any(s.in_flight for s in self.steps.values()):
            return ExecutionPhase.RUNNING
        if self.approvals:
            return ExecutionPhase.WAITING_FOR_APPROVAL
        if self.signal_waits:
            return ExecutionPhase.WAITING_FOR_SIGNAL
        if self.sleeps:
            return ExecutionPhase.SLEEPING
        return ExecutionPhase.RUNNING

    def current_steps(self) -> list[str]:
        names = [n for n, s in self.steps.items() if s.in_flight or s.phase in _WAITING]
        return names or list(self.sleeps) or list(self.held_steps)

    def queued_steps(self) -> list[str]:
        """Steps whose task is queued and not started: a pause takes them back."""
        return [name for name, step in self.steps.items() if step.phase in _QUEUED and step.token is not None]

    def wake_at_ms(self) -> int | None:
        return min((s.wake_at_ms for s in self.sleeps.values()), default=None)

    @property
    def chain_id(self) -> str:
        """The continue-as-new chain's name: its first run's id (this one's for a first run)."""
        return self.first_run_id or self.execution_id


def _shallow_copier(cls: type[_T]) -> Callable[[_T], _T]:
    """A function copying every slot of a `cls` into a new one, as straight-line code.

    `clone` runs twice per step (a completion, then its eager lease); `dataclasses.replace`
    spent about 13 µs of it re-running `__init__` over every field, this about 0.5 µs.
    Generated the way `dataclasses` generates `__init__`, from the class's own slots.
    """
    names = [name for name in getattr(cls, "__slots__", ()) if name.isidentifier()]
    assert names, f"{cls.__name__} has no slots to copy"
    body = "".join(f"    copy.{name} = state.{name}\n" for name in names)
    namespace: dict[str, Any] = {"cls": cls, "new": object.__new__}
    exec(f"def copy_state(state):\n    copy = new(cls)\n{body}    return copy\n", namespace)
    copier: Callable[[_T], _T] = namespace["copy_state"]
    return copier


_shallow_copy = _shallow_copier(ExecutionState)
_copy_step = _shallow_copier(StepState)  # copy on write of one step (`ExecutionState.step`)


_ARGUMENTS_FRAME = len('{"input":,"results":{}}')


def result_entry_size(name: str, value: JSON) -> int:
    """Bytes a result adds to a task's arguments: its key, its value and a separator."""
    return json_size(name) + 1 + json_size(value) + 1


def variables_entry_size(variables: dict[str, JSON]) -> int:
    """Bytes the variables add to a task's arguments: ``,"vars":`` and their JSON."""
    return len(',"vars":') + json_size(variables)


def approval_result(approver: str, payload: JSON, request: PendingApproval | None) -> dict[str, JSON]:
    """What an approved step gives later steps (and its diverge rules)."""
    return {"approved": True, "approver": approver, "payload": payload, "data": request.data if request else None}


def fold(definition: WorkflowDefinition, execution_id: str, history: list[RecordedEvent]) -> ExecutionState:
    state = ExecutionState(execution_id=execution_id)
    for recorded in history:
        apply_event(state, definition, recorded)
    return state


def _settle_in_flight(state: ExecutionState, at_ms: int) -> None:
    for name, shared in list(state.steps.items()):
        if shared.in_flight or shared.phase in _WAITING or shared.phase == StepPhase.HELD:
            step = state.step(name)
            step.phase = StepPhase.CANCELLED
            step.finished_at_ms = at_ms
    state.approvals.clear()
    state.sleeps.clear()
    state.held_steps.clear()
    state.fan_outs.clear()
    state.signal_waits.clear()
    if state.live_children:  # the parent asked for their cancel, or left them
        children = list(state.children)
        for index in state.live_children.values():
            link = children[index]
            children[index] = replace(link, phase="Abandoned" if link.abandon else "Cancelled")
        state.children = children
    state.live_children.clear()


def apply_event(state: ExecutionState, definition: WorkflowDefinition, recorded: RecordedEvent) -> None:
    """Change `state` in place by one event. Never fails for a history the engine wrote."""
    event, at = recorded.event, recorded.at_ms
    state.last_seq = recorded.seq
    state.updated_at_ms = at
    match event:
        case ExecutionStarted():
            state.started = True
            state.workflow = event.workflow
            state.input = event.input
            if definition.variables:
                state.vars = dict(definition.variables)
                state.vars_bytes = variables_entry_size(state.vars)
            state.carried_bytes = (
                _ARGUMENTS_FRAME + json_size(event.input) + sum(state.result_sizes.values()) + state.vars_bytes
            )
            state.phase = ExecutionPhase.RUNNING
            state.created_at_ms = at
            _set_deadline(state, event.deadline_ms, recorded.seq)
            state.parent_id, state.parent_step = event.parent_id, event.parent_step
            if event.carried_request_ids:
                state.signal_request_ids = dict.fromkeys(event.carried_request_ids)
            state.continued_from, state.first_run_id, state.run = event.continued_from, event.first_run_id, event.run
            state.code_pending = definition.is_code
        case StepScheduled():
            step = state.step(event.step)
            _enter(state, definition, event.step)
            step.phase = StepPhase.RETRYING if event.attempt > 1 or event.poll > 0 else StepPhase.SCHEDULED
            if step.attempt == 0:  # fresh, or started over by a jump or a redrive: a new run
                step.run += 1
            if event.attempt != step.attempt:
                step.total_attempts += 1
            step.attempt, step.poll, step.token = event.attempt, event.poll, event.token
            step.settled = False
            step.finished_at_ms = None
            step.visible_at_ms = event.visible_at_ms
        case StepSkipped():
            step = state.step(event.step)
            _enter(state, definition, event.step)
            step.phase, step.settled, step.token = StepPhase.SKIPPED, True, None
            step.started_at_ms, step.finished_at_ms = None, at
            state.drop_result(event.step)
        case StepStarted():
            step = state.step(event.step)
            step.phase = StepPhase.RUNNING
            step.worker_id = event.worker_id
            step.started_at_ms = step.started_at_ms or at
            state.last_worker_id = event.worker_id
        case StepCompleted():
            step = state.step(event.step)
            state.finished_tokens.add(event.token)
            step.phase, step.settled, step.finished_at_ms = StepPhase.SUCCEEDED, True, at
            step.token = None
            step.last_progress = None
            fan = state.fan_outs.pop(event.step, None)
            state.set_result(event.step, fan.outcomes if event.collected and fan is not None else event.output)
            _completed(state, definition, event.step)
            _code_step_settled(state, event.step)
            if event.goto is not None and event.rule is not None:
                state.pending_jump = (event.rule, event.step, event.goto)
        case StepFailed():
            step = state.step(event.step)
            state.fan_outs.pop(event.step, None)  # its items were stopped with it
            state.finished_tokens.add(event.token)
            step.last_error = f"{event.error_type}: {event.message}"
            step.last_stacktrace = event.stacktrace
            step.token = None
            step.phase = StepPhase.FAILED
            step.finished_at_ms = at
            if event.last_progress is not None:
                step.last_progress = event.last_progress
            if event.continued:
                step.settled = True
                step.last_progress = None
                state.set_result(event.step, {"error": {"type": event.error_type, "message": event.message}})
            if event.goto is not None and event.rule is not None:
                state.pending_jump = (event.rule, event.step, event.goto)
            if definition.is_code and event.retry_at_ms is None:  # a code step failed for good
                step.settled = True
                _code_step_settled(state, event.step)
        case StepRetryAfter():
            state.finished_tokens.add(event.token)
        case ForEachStarted():
            _engine_attempt(state, definition, event.step, StepPhase.RUNNING, at)
            config = definition.steps[event.step].for_each
            count = len(event.items)
            fan = state.fan_outs[event.step] = FanOut(
                list(event.items),
                event.concurrency,
                collect=config is not None and config.collect,
                outcomes=[None] * count,
                settled=bytearray(count),
                outcome_bytes=1 + max(count, 1),
            )
            for _ in range(min(event.concurrency, count)):
                _schedule_next_item(state, event.step, fan, recorded.seq, event.visible_at_ms or at)
        case ItemCompleted():
            fan = state.fan_outs[event.step]
            fan.live.pop(event.item, None)
            _item_settled(fan, event.item, event.output)
            _schedule_next_item(state, event.step, fan, recorded.seq, at)
        case ItemFailed():
            fan = state.fan_outs[event.step]
            fan.live.pop(event.item, None)
            if event.retry_at_ms is not None:
                token = TaskToken(state.execution_id, event.step, event.attempt + 1, 0, recorded.seq, event.item)
                fan.live[event.item] = LiveItem(
                    event.attempt + 1, token.encode(), event.retry_at_ms, recorded.seq, held=bool(state.holds)
                )
            else:
                fan.failed += 1
                if fan.first_failure is None:
                    fan.first_failure = (event.item, event.error_type, event.message)
                _item_settled(fan, event.item, {"error": {"type": event.error_type, "message": event.message}})
                if fan.collect:  # failFast: the step fails next, nothing more is scheduled
                    _schedule_next_item(state, event.step, fan, recorded.seq, at)
        case StepDeadLettered():
            state.dead_letters[event.dead_letter_id] = event.step
        case DeadLetterRedriven():
            state.dead_letters.pop(event.dead_letter_id, None)
            if event.deadline_ms is not None:
                _set_deadline(state, event.deadline_ms, recorded.seq)
            state.phase = ExecutionPhase.RUNNING
            state.error = None
            for name in definition.positions[state.position]:
                member = state.step(name)
                # The dead-lettered step runs again even if it "succeeded": a diverge `retry` on
                # its result gave up on that result.
                if not member.settled or name == event.step:
                    member.phase, member.attempt, member.poll, member.token = StepPhase.PENDING, 0, 0, None
                    member.settled = False
        case SleepStarted():
            state.sleeps[event.step] = PendingSleep(event.timer_id, event.wake_at_ms)
            if event.timer_step:
                _engine_attempt(state, definition, event.step, StepPhase.SLEEPING, at)
        case SleepEnded():
            state.sleeps.pop(event.step, None)
        case ApprovalRequested():
            step = state.step(event.step)
            _enter(state, definition, event.step)
            if event.token is None:
                if step.attempt == 0:
                    step.run += 1
                step.attempt += 1
                step.total_attempts += 1
            else:
                state.finished_tokens.add(event.token)
            step.phase, step.token, step.settled = StepPhase.WAITING_FOR_APPROVAL, None, False
            step.started_at_ms = step.started_at_ms or at
            state.approvals[event.step] = PendingApproval(
                event.approval_kind, event.data, event.timer_id, event.timeout_at_ms, event.token, requested_at_ms=at
            )
        case ApprovalGranted():
            request = state.approvals.pop(event.step, None)
            step = state.step(event.step)
            step.phase, step.settled, step.finished_at_ms = StepPhase.SUCCEEDED, True, at
            state.set_result(event.step, approval_result(event.approver, event.payload, request))
            _completed(state, definition, event.step)
            _code_step_settled(state, event.step)
            if event.goto is not None and event.rule is not None:
                state.pending_jump = (event.rule, event.step, event.goto)
        case ApprovalRejected() | ApprovalTimedOut():
            state.approvals.pop(event.step, None)
        case SignalReceived():
            size = json_size(event.data)
            state.signals = [*state.signals, QueuedSignal(recorded.seq, event.name, event.data, event.sender, at, size)]
            state.signal_bytes += size
            if event.request_id is not None:
                state.signal_request_ids = {**state.signal_request_ids, event.request_id: None}
        case SignalWaitStarted():
            _engine_attempt(state, definition, event.step, StepPhase.WAITING_FOR_SIGNAL, at)
            state.signal_waits[event.step] = SignalWaiting(
                event.name, recorded.seq, event.timer_id, event.timeout_at_ms
            )
        case SignalDelivered():
            if event.step not in state.signal_waits:  # taken at once, with no wait recorded
                _engine_attempt(state, definition, event.step, StepPhase.RUNNING, at)
            state.signal_waits.pop(event.step, None)
            for index, queued in enumerate(state.signals):
                if queued.seq == event.signal_seq:
                    state.signals = state.signals[:index] + state.signals[index + 1 :]
                    state.signal_bytes -= queued.size
                    break
        case SignalWaitTimedOut():
            state.signal_waits.pop(event.step, None)
        case ChildStarted():
            _engine_attempt(state, definition, event.step, StepPhase.RUNNING, at)
            state.live_children[event.step] = len(state.children)
            state.children = [
                *state.children,
                ChildLink(event.step, event.child_id, event.workflow, abandon=event.abandon),
            ]
        case ChildEnded():
            index = state.live_children.pop(event.step, -1)
            if index >= 0:
                ended = replace(state.children[index], phase=event.phase)
                state.children = [*state.children[:index], ended, *state.children[index + 1 :]]
        case ExecutionContinuedAsNew():
            state.ending = None
            state.phase = ExecutionPhase.CONTINUED_AS_NEW
            state.continued_as = event.next_id
            _settle_in_flight(state, at)
        case VariablesSet():
            state.vars.update(event.values)
            size = variables_entry_size(state.vars)
            state.carried_bytes += size - state.vars_bytes
            state.vars_bytes = size
        case JumpTaken():
            _jump(state, definition, event)
        case JumpLimitReached():
            key = event.rule or f"{event.step}->{event.target}"
            before = state.jump_limits.get(key)
            state.jump_limits[key] = JumpLimit(event.step, event.target, event.bound, before.times + 1 if before else 1)
        case ExecutionEnding():
            _settle_in_flight(state, at)
            state.ending = Ending(
                ExecutionPhase(event.outcome),
                tuple(event.handlers),
                event.reason,
                event.step,
                event.output,
                event.rule,
                event.compensations,
            )
            state.compensated = state.compensated or event.compensations > 0
            for name in event.handlers:  # each runs afresh in this ending
                state.reset_step(name)
                state.drop_result(name)
        case ExecutionSucceeded():
            state.ending = None
            state.phase = ExecutionPhase.SUCCEEDED
            state.output = event.output
            _settle_in_flight(state, at)  # a rule that ends early leaves a group's other members
        case ExecutionFailed():
            state.ending = None
            state.phase = ExecutionPhase.FAILED
            state.error = event.reason
            _settle_in_flight(state, at)
        case ExecutionCancelled():
            state.ending = None
            state.phase = ExecutionPhase.CANCELLED
            state.error = event.reason or "cancelled"
            _settle_in_flight(state, at)
        case WorkflowTaskScheduled():
            state.workflow_task = WorkflowTask(event.token, event.attempt)
        case WorkflowTaskStarted():
            if state.workflow_task is not None:
                state.workflow_task = replace(state.workflow_task, worker_id=event.worker_id, started_seq=recorded.seq)
                state.code_pending = False  # the task carries everything up to here
                state.code_time_ms = event.time_ms if event.time_ms is not None else recorded.at_ms
        case WorkflowTaskCompleted():
            started = state.workflow_task.started_seq if state.workflow_task is not None else 0
            state.workflow_task, state.workflow_task_failures, state.workflow_task_error = None, 0, None
            state.sticky = (event.worker_id, started)
            _record_commands(state, definition, event.commands)
        case WorkflowTaskFailed():
            state.workflow_task = None
            state.workflow_task_failures += 1
            state.workflow_task_error = f"{event.error_type}: {event.message}"
            state.sticky = None  # the next task replays from the start, on any worker
            state.code_pending = True  # what this one was to show is still to be seen
        case ExecutionCancelRequested():
            state.cancel_requested = event.reason
            state.code_pending = True
        case ExecutionPaused():
            _pause(state, event, at)
        case ExecutionResumed():
            state.holds.pop(event.source, None)
            if not state.holds:  # `decide` schedules what was held, each by an event of its own
                state.held_steps.clear()
                for fan in state.fan_outs.values():
                    fan.live = {item: replace(live, held=False) for item, live in fan.live.items()}
        case ExecutionReset():
            _carry(state, definition, event)
        case FlowAssigned():
            state.flow_key, state.priority = event.key, event.priority
        case StepHeld():
            step = state.step(event.step)
            _enter(state, definition, event.step)
            step.phase, step.token, step.settled, step.finished_at_ms = StepPhase.HELD, None, False, None
            state.held_steps[event.step] = HeldStep(event.attempt, event.poll, event.visible_at_ms)


def _carry(state: ExecutionState, definition: WorkflowDefinition, event: ExecutionReset) -> None:
    """A reset run begins with the old run's steps before its first step, settled as they were."""
    state.reset_from = event.from_id
    for name, phase in event.phases.items():
        step = state.step(name)
        step.phase, step.settled, step.run = StepPhase(phase), True, 1
        if step.phase == StepPhase.SUCCEEDED:
            _completed(state, definition, name)
    for name, value in event.results.items():
        state.set_result(name, value)
    if event.vars is not None:
        state.vars = dict(event.vars)
        size = variables_entry_size(state.vars)
        state.carried_bytes += size - state.vars_bytes
        state.vars_bytes = size
    state.position = definition.position_of(event.step) - 1


def _pause(state: ExecutionState, event: ExecutionPaused, at: int) -> None:
    """Put the hold on; the first one takes back queued tasks (`decide` cancels them in the same decision)."""
    first = not state.holds
    state.holds[event.source] = Hold(event.reason, event.by, at)
    if not first:
        return
    for name in state.queued_steps():
        step = state.step(name)
        state.held_steps[name] = HeldStep(step.attempt, step.poll, step.visible_at_ms)
        step.phase, step.token = StepPhase.HELD, None
    task = state.workflow_task
    if task is not None and not task.started_seq:
        state.workflow_task = None  # the code still has to see what it was to show (code_pending)


def _code_step_settled(state: ExecutionState, step: str) -> None:
    """A code workflow's command finished: the code has news, and the step's config is let go."""
    if state.code_steps.pop(step, None) is not None:
        state.code_args.pop(step, None)
        state.code_pending = True


def _record_commands(state: ExecutionState, definition: WorkflowDefinition, commands: list[JSON]) -> None:
    code = definition.code
    for command in commands:
        if "id" in command:
            state.next_command_id = max(state.next_command_id, command["id"] + 1)
        step = command.get("step")
        if step is None or code is None:
            continue
        state.code_steps[step] = code_step_config(code, step, command["type"], command)
        if command["type"] == "step":
            state.code_args[step] = command.get("args")
        elif command["type"] == "child":
            state.code_args[step] = command.get("input")


def _engine_attempt(
    state: ExecutionState, definition: WorkflowDefinition, name: str, phase: StepPhase, at: int
) -> None:
    """An attempt with no task of its own begins (a timer step, a fan-out): a new run if fresh."""
    step = state.step(name)
    _enter(state, definition, name)
    if step.attempt == 0:
        step.run += 1
    step.attempt += 1
    step.total_attempts += 1
    step.phase, step.token, step.settled = phase, None, False
    step.started_at_ms, step.finished_at_ms = at, None


def _schedule_next_item(state: ExecutionState, step: str, fan: FanOut, seq: int, at_ms: int) -> None:
    """The next unscheduled item gets its first attempt's task, made by the event at ``seq``."""
    item = fan.next_item
    if item >= len(fan.items):
        return
    fan.next_item += 1
    token = TaskToken(state.execution_id, step, 1, 0, seq, item).encode()
    fan.live[item] = LiveItem(1, token, at_ms, seq, held=bool(state.holds))


def _item_settled(fan: FanOut, item: int, outcome: JSON) -> None:
    fan.outcomes[item] = outcome
    fan.settled[item] = 1
    fan.done += 1
    fan.outcome_bytes += json_size(outcome)


def _enter(state: ExecutionState, definition: WorkflowDefinition, step: str) -> None:
    """The timeline is at the step's position; a compensation or finally step, or a code workflow's
    step, has none."""
    config = definition.steps.get(step)
    if config is not None and config.position >= 0:
        state.position = config.position


def _completed(state: ExecutionState, definition: WorkflowDefinition, step: str) -> None:
    config = definition.steps.get(step)
    if config is not None and config.compensate is not None:
        if step in state.completed:
            state.completed.remove(step)
        state.completed.append(step)


def _set_deadline(state: ExecutionState, deadline_ms: int | None, seq: int) -> None:
    state.deadline_ms = deadline_ms
    state.deadline_timer_id = (
        None if deadline_ms is None else TimerId(state.execution_id, TimerKind.DEADLINE, DEADLINE_STEP, seq).encode()
    )


def _jump(state: ExecutionState, definition: WorkflowDefinition, event: JumpTaken) -> None:
    state.pending_jump = None
    state.jump_counts[event.rule] = state.jump_counts.get(event.rule, 0) + 1
    origin = definition.position_of(event.from_step)
    target = definition.position_of(event.to_step)
    if target > origin:
        for index in range(origin + 1, target):
            for name in definition.positions[index]:
                skipped = state.step(name)
                skipped.phase, skipped.settled = StepPhase.SKIPPED, True
    else:
        for index in range(target, origin + 1):
            for name in definition.positions[index]:
                state.reset_step(name)
                state.drop_result(name)
    for name in definition.positions[target]:
        state.reset_step(name)
        state.drop_result(name)
    state.position = target
