"""The engine core: decide(definition, state, command, now) -> events and actions.

Pure: no I/O, no clock, no randomness. The caller persists the events and
actions in one transaction; if that fails, nothing happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..model import CompiledDiverge, InputInvalid, Retry, StepConfig, WorkflowDefinition, limits
from ..model.durations import MAX_DURATION_MS, format_duration
from . import actions as act
from . import commands as cmd
from . import ending, timer_steps
from . import events as ev
from .arguments import ARGUMENTS_TOO_LARGE, task_arguments
from .code_decisions import CodeDecisions
from .command_checks import CommandRejected, CommandTooLarge, check_strings
from .composition import CompositionDecisions
from .expressions import ExpressionError, evaluate, evaluate_condition, to_json
from .fan_out import FanOutDecisions, parsed_token
from .flow import flow_of
from .ids import (
    WORKFLOW_TASK_STEP,
    ApprovalRejection,
    ApprovalTimeout,
    RejectedResult,
    TaskToken,
    TimerId,
    TimerKind,
)
from .pause import PauseDecisions
from .retry import backoff_ms
from .state import (
    ExecutionPhase,
    ExecutionState,
    StepPhase,
    StepState,
    apply_event,
    approval_result,
    result_entry_size,
    variables_entry_size,
)

__all__ = [
    "ARGUMENTS_TOO_LARGE",
    "DEFAULT_MAX_HISTORY_EVENTS",
    "DEFAULT_MAX_TASK_BYTES",
    "EXPRESSION_ERROR",
    "SCHEDULE_TO_START_TIMEOUT",
    "CommandRejected",
    "CommandTooLarge",
    "Decision",
    "Reply",
    "decide",
    "parse_token",
]

JSON = Any

# Every event is kept and an execution is rebuilt from all of them: a history without bound
# would make each rebuild slower and the store larger. Long loops should continue as new.
DEFAULT_MAX_HISTORY_EVENTS = 20_000
# A task carries the input and every result so far; past the gRPC message limit its PollTask
# reply could not be sent after its lease was committed, and the lease would expire forever.
DEFAULT_MAX_TASK_BYTES = limits.task_budget(limits.DEFAULT_MAX_PAYLOAD_BYTES)
EXPRESSION_ERROR = "ExpressionError"  # the dead letter of a step whose CEL failed at run time
SCHEDULE_TO_START_TIMEOUT = "ScheduleToStartTimeout"
_A_TYPE = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
}


class Reply(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclass
class Decision:
    events: list[ev.RecordedEvent] = field(default_factory=list)
    actions: list[act.Action] = field(default_factory=list)
    reply: Reply = Reply.ACCEPTED
    state: ExecutionState | None = None
    # The seq of the WorkflowTaskStarted that recorded a step completion's continuation, when it did.
    continued_seq: int | None = None


def parse_token(token: str) -> tuple[str, str, int, int, int]:
    """(execution_id, step, attempt, poll, seq) from a task token; `ids.TaskToken.parse` in a tuple."""
    parsed = TaskToken.parse(token)
    return parsed.execution_id, parsed.step, parsed.attempt, parsed.poll, parsed.seq


def decide(
    definition: WorkflowDefinition,
    state: ExecutionState,
    command: cmd.Command,
    *,
    now_ms: int,
    max_history_events: int = DEFAULT_MAX_HISTORY_EVENTS,
    max_task_bytes: int = DEFAULT_MAX_TASK_BYTES,
    max_input_bytes: int = limits.DEFAULT_MAX_PAYLOAD_BYTES,
    owned: bool = False,
) -> Decision:
    """Apply one command to (a copy of) the state and return what must be recorded.

    A decision that takes the history to ``max_history_events`` also fails the execution, naming
    the limit: the last events of one decision may pass it by the few that decision made.
    ``max_task_bytes`` bounds what a task carries (input and results): the step whose output
    would pass it fails for good, and an approval or input that would pass it is refused.
    ``max_input_bytes`` (the payload limit) bounds an input the schema's defaults made larger.
    ``owned``: the caller gives ``state`` up, and it is changed in place instead of copied; for the
    state of a decision nobody else holds yet, such as the eager leases of the tasks it scheduled
    (a refused command changes nothing, so the state stays the caller's to use).
    """
    check_strings(command)
    own = state if owned else state.clone()
    return _Decider(definition, own, now_ms, max_history_events, max_task_bytes, max_input_bytes).run(command)


class _Decider(FanOutDecisions, CompositionDecisions, CodeDecisions, PauseDecisions):
    def __init__(
        self,
        definition: WorkflowDefinition,
        state: ExecutionState,
        now_ms: int,
        max_history_events: int,
        max_task_bytes: int,
        max_input_bytes: int,
    ) -> None:
        self.definition = definition
        self.state = state
        self.now = now_ms
        self.max_history_events = max_history_events
        self.max_task_bytes = max_task_bytes
        self.max_input_bytes = max_input_bytes
        self.decision = Decision(state=state)
        # Gotos refused by their bound while rules were matched, recorded after the event they follow.
        self.refused_jumps: list[ev.JumpLimitReached] = []
        self.first_seq = state.last_seq + 1  # with a counter, names the decision's outbox messages
        self.messages_sent = 0

    # -- plumbing --------------------------------------------------------------------------

    def emit(self, event: ev.Event) -> int:
        seq = self.state.last_seq + 1
        recorded = ev.RecordedEvent(seq=seq, at_ms=self.now, event=event)
        apply_event(self.state, self.definition, recorded)
        self.decision.events.append(recorded)
        self.record_refused_jumps()  # after the step's outcome, whose diverge rules refused them
        return seq

    def record_refused_jumps(self) -> None:
        refused, self.refused_jumps = self.refused_jumps, []
        for event in refused:
            self.emit(event)

    def do(self, action: act.Action) -> None:
        self.decision.actions.append(action)

    def refuse(self, *, duplicate: bool) -> None:
        self.decision.reply = Reply.DUPLICATE if duplicate else Reply.STALE

    def config(self, step: str) -> StepConfig:
        if self.definition.is_code:  # a code workflow's steps are its commands, while they live
            return self.state.code_steps.get(step) or _SETTLED_CODE_STEP
        return self.definition.steps[step]

    def run(self, command: cmd.Command) -> Decision:
        if not self.state.started and not isinstance(command, cmd.Start):
            raise CommandRejected(f"execution {self.state.execution_id!r} has not started")
        was_terminal = self.state.phase.terminal
        match command:
            case cmd.Start():
                self.start(command)
            case cmd.TaskStarted():
                self.task_started(command)
            case cmd.TaskCompleted():
                self.task_completed(command)
            case cmd.TaskTimedOut():
                self.task_timed_out(command)
            case cmd.TimerFired():
                self.timer_fired(command)
            case cmd.Approve():
                self.approve(command)
            case cmd.Reject():
                self.reject(command)
            case cmd.Cancel():
                self.cancel(command)
            case cmd.Redrive():
                self.redrive(command)
            case cmd.Signal():
                self.signal(command)
            case cmd.ChildFinished():
                self.child_finished(command)
            case cmd.Pause():
                self.pause(command)
            case cmd.Resume():
                self.resume(command)
        if self.state.last_seq >= self.max_history_events and not self.state.phase.terminal:
            self.fail_execution(
                f"the history reached {self.state.last_seq} events, the limit of {self.max_history_events}"
                " (--max-history-events): a loop this long should end its run with a continueAsNew step,"
                " which starts the next run with a fresh history",
                None,
            )
        if self.state.phase.terminal and not was_terminal:
            self.tell_parent()
            self.free_slot()
        return self.decision

    # -- commands --------------------------------------------------------------------------

    def start(self, command: cmd.Start) -> None:
        if self.state.started:
            self.decision.reply = Reply.DUPLICATE
            return
        # Filled here, not by the caller, so ExecutionStarted records the filled input: replay never fills.
        input = self.definition.with_input_defaults(command.input)
        if input is not command.input and limits.json_size(input) > self.max_input_bytes:
            raise InputInvalid(
                f"the input with the input schema's defaults filled in is"
                f" {limits.describe_size(limits.json_size(input))}, over the"
                f" {limits.describe_size(self.max_input_bytes)} payload limit"
            )
        try:
            self.definition.validate_input(input)
        except InputInvalid:
            if command.input is not None:
                raise
            # "None is not of type 'object'" reads as a bug in the engine; the caller forgot the input.
            kind = _A_TYPE.get(str((self.definition.input_schema or {}).get("type")))
            raise InputInvalid(
                f"the workflow {command.workflow!r} requires an input{f' ({kind})' if kind else ''} and none was given"
            ) from None
        size = limits.json_size(input)
        if size + 64 > self.max_task_bytes:
            raise InputInvalid(
                f"the input is {limits.describe_size(size)}, over the {limits.describe_size(self.max_task_bytes)}"
                " limit of what a task carries"
            )
        flow = flow_of(self.definition, input)  # before anything is recorded: a failure refuses the start
        deadline = self.start_deadline()
        self.emit(
            ev.ExecutionStarted(
                command.workflow,
                input,
                self.definition.spec_hash,
                deadline,
                parent_id=command.parent_id,
                parent_step=command.parent_step,
                continued_from=command.continued_from,
                first_run_id=command.first_run_id,
                run=command.run,
                carried_request_ids=list(command.carried_request_ids) or None,
            )
        )
        if flow is not None:
            self.emit(ev.FlowAssigned(flow.key, flow.priority))
            self.wait_for_slot()
        for pause in command.pauses:
            self.pause(pause)
        self.arm_deadline()
        if command.reset is not None:
            self.start_at(command.reset)
            return
        self.advance()

    def start_at(self, point: cmd.ResetPoint) -> None:
        """A reset run: carry the steps before ``point.step``, then reach its position (its rules are
        not evaluated again: the old run went on from there)."""
        self.emit(ev.ExecutionReset(point.from_id, point.step, point.results, point.phases, point.vars))
        for name in self.definition.positions[self.definition.position_of(point.step)]:
            if not self.config(name).depends_on:
                self.reach(name)
                if self.finished():
                    return
        self.advance()

    def start_deadline(self) -> int | None:
        """The workflow timeout's deadline counted from now (the start, or a redrive), or None."""
        timeout = self.definition.timeout_ms
        return None if timeout is None else self.now + min(timeout, MAX_DURATION_MS)

    def arm_deadline(self) -> None:
        if self.state.deadline_timer_id is not None and self.state.deadline_ms is not None:
            self.do(act.StartTimer(self.state.deadline_timer_id, self.state.deadline_ms))

    def current_task(self, token: str, parsed: TaskToken | None) -> tuple[str, int] | None:
        """(step, attempt) when `token` is the step's live task; sets the reply otherwise.

        ``parsed`` is the token parsed once by the caller (None when malformed).
        """
        if parsed is None:
            self.decision.reply = Reply.STALE
            return None
        step, attempt = parsed.step, parsed.attempt
        if token in self.state.finished_tokens:
            self.decision.reply = Reply.DUPLICATE
            return None
        live = self.state.steps.get(step)
        if self.state.phase.terminal or live is None or live.token != token or live.phase == StepPhase.CANCELLED:
            self.decision.reply = Reply.STALE  # (cancelled: by the ending, before its token was dropped)
            return None
        return step, attempt

    def task_started(self, command: cmd.TaskStarted) -> None:
        parsed = parsed_token(command.token)
        if parsed is not None and parsed.step == WORKFLOW_TASK_STEP:
            self.workflow_task_started(command)
            return
        if parsed is not None and parsed.item is not None:
            self.item_started(parsed, command)
            return
        found = self.current_task(command.token, parsed)
        if found is None:
            return
        step, attempt = found
        if self.state.steps[step].phase == StepPhase.RUNNING:
            self.decision.reply = Reply.STALE
            return
        config = self.config(step)
        if config.schedule_to_start_ms is not None:
            self.do(act.CancelTimer(TimerId.for_task(TaskToken.parse(command.token)).encode()))
        self.emit(ev.StepStarted(step, attempt, command.token, command.worker_id))
        self.do(
            act.LeaseTask.now(
                command.token,
                command.worker_id,
                lease_ms=config.lease_ms,
                timeout_ms=config.timeout_ms,
                now_ms=self.now,
                last_progress=self.state.steps[step].last_progress,
                run=self.state.steps[step].run,
            )
        )

    def task_completed(self, command: cmd.TaskCompleted) -> None:
        parsed = parsed_token(command.token)
        if parsed is not None and parsed.step == WORKFLOW_TASK_STEP:
            self.workflow_task_completed(command)
            return
        if parsed is not None and parsed.item is not None:
            self.item_completed(parsed, command)
            self.advance()
            return
        found = self.current_task(command.token, parsed)
        if found is None:
            return
        step, attempt = found
        live = self.state.steps[step]
        # Only the lease holder's outcome counts: a task nobody leased, or another worker's
        # lease, is not the caller's to finish (it is recorded nowhere).
        if live.phase != StepPhase.RUNNING or (command.worker_id is not None and live.worker_id != command.worker_id):
            self.decision.reply = Reply.STALE
            return
        token, outcome = command.token, command.outcome
        continues = command.continuation is not None and self.may_continue(command.worker_id, command.continuation)
        mark = len(self.decision.events)
        self.do(act.DeleteTask(token))
        problem = self.outcome_overflow(step, outcome)
        if problem is not None:
            self.fail_attempt(step, attempt, token, ARGUMENTS_TOO_LARGE, problem, retryable=False)
            self.advance()
            return
        match outcome:
            case cmd.OutcomeSuccess():
                self.succeed(step, attempt, token, outcome.output)
            case cmd.OutcomeSleep():
                self.succeed(step, attempt, token, outcome.output, sleep_ms=_bounded(outcome.duration_ms))
            case cmd.OutcomeFailure():
                self.fail_attempt(
                    step,
                    attempt,
                    token,
                    outcome.error_type,
                    outcome.message,
                    outcome.retryable,
                    stacktrace=limits.cut_middle(outcome.stacktrace, limit=limits.MAX_STACKTRACE, what="stack trace"),
                    progress=command.progress,
                )
            case cmd.OutcomeCancelled():
                self.fail_attempt(
                    step, attempt, token, "Cancelled", outcome.message, retryable=True, progress=command.progress
                )
            case cmd.OutcomeRetryAfter():
                retry_at = self.now + _bounded(outcome.delay_ms)
                self.emit(ev.StepRetryAfter(step, attempt, token, retry_at))
                self.schedule(step, attempt=attempt, poll=self.state.steps[step].poll + 1, visible_at=retry_at)
            case cmd.OutcomeApproval():
                timeout = None if outcome.timeout_ms is None else _bounded(outcome.timeout_ms)
                self.request_approval(step, outcome.approval_kind, outcome.data, timeout, token)
            case cmd.OutcomeWorkflowCommands():
                message = "a step task is answered with its outcome, not with workflow commands"
                self.fail_attempt(step, attempt, token, "InvalidOutcome", message, retryable=False)
        if (
            continues
            and command.worker_id is not None
            and command.continuation is not None
            and self.continue_inline(step, mark, command.worker_id, command.continuation)
        ):
            return  # the continuation took the workflow task's place
        self.advance()

    def task_timed_out(self, command: cmd.TaskTimedOut) -> None:
        error_type, message = {
            "start_to_close": ("StartToCloseTimeout", "the attempt ran past the step's timeout"),
            "heartbeat": ("HeartbeatTimeout", "the step sent no heartbeat within its heartbeatTimeout"),
            "lease": ("LeaseExpired", "the worker stopped answering before the step finished"),
        }[command.kind]
        parsed = parsed_token(command.token)
        if parsed is not None and parsed.step == WORKFLOW_TASK_STEP:
            self.workflow_task_timed_out(command)
            return
        if parsed is not None and parsed.item is not None:
            self.item_timed_out(parsed, command, error_type, message)
            self.advance()
            return
        found = self.current_task(command.token, parsed)
        if found is None:
            return
        step, attempt = found
        self.do(act.DeleteTask(command.token))
        self.fail_attempt(step, attempt, command.token, error_type, message, retryable=True, progress=command.progress)
        self.advance()

    def timer_fired(self, command: cmd.TimerFired) -> None:
        if self.state.phase.terminal:
            self.decision.reply = Reply.STALE
            return
        self.do(act.CancelTimer(command.timer_id))
        try:
            timer = TimerId.parse(command.timer_id)
        except ValueError:
            timer = None
        if timer is not None and timer.kind == TimerKind.SCHEDULE_TO_START:
            self.schedule_to_start_expired(timer)
            return
        if timer is not None and timer.kind == TimerKind.DEADLINE:
            self.deadline_passed(command.timer_id)
            return
        for step, sleep in self.state.sleeps.items():
            if sleep.timer_id == command.timer_id:
                self.emit(ev.SleepEnded(step, command.timer_id))
                live = self.state.steps.get(step)
                if live is not None and live.phase == StepPhase.SLEEPING:  # a timer step: it is done
                    self.succeed(step, live.attempt, command.timer_id, {"wokeAt": timer_steps.rfc3339(self.now)})
                self.advance()
                return
        if timer is not None and timer.kind == TimerKind.SIGNAL and self.signal_timed_out(command.timer_id):
            return
        for step, approval in self.state.approvals.items():
            if approval.timer_id == command.timer_id:
                self.emit(ev.ApprovalTimedOut(step))
                attempt = self.state.steps[step].attempt
                self.fail_attempt(
                    step,
                    attempt,
                    ApprovalTimeout(TimerId.parse(command.timer_id)).encode(),
                    "ApprovalTimedOut",
                    "nobody approved the step before its timeout",
                    retryable=False,
                    dead_letter=False,
                )
                self.advance()
                return
        self.decision.reply = Reply.STALE

    def deadline_passed(self, timer_id: str) -> None:
        # Superseded by a redrive's new deadline, or disarmed as the execution began to end.
        if timer_id != self.state.deadline_timer_id or self.state.ending is not None:
            self.decision.reply = Reply.STALE
            return
        timeout = format_duration(self.definition.timeout_ms or 0)
        self.fail_execution(
            f"WorkflowTimeout: the execution did not finish within the workflow's timeout ({timeout})", None
        )

    def schedule_to_start_expired(self, timer: TimerId) -> None:
        """No worker took the task in time: the attempt fails, for good unless a diverge rule retries.

        Not retryable by default (as in Temporal): another attempt would wait on the same queue for
        the same absent workers, so the step's diverge rules or its dead letter decide instead.
        """
        live = self.state.steps.get(timer.step)
        if (
            timer.execution_id != self.state.execution_id
            or live is None
            or live.token is None
            or live.phase not in (StepPhase.SCHEDULED, StepPhase.RETRYING)
            or TaskToken.parse(live.token).seq != timer.seq
        ):
            self.decision.reply = Reply.STALE  # leased, or superseded, before the timer fired
            return
        token, config = live.token, self.config(timer.step)
        waited = format_duration(config.schedule_to_start_ms or 0)
        self.do(act.DeleteTask(token))
        self.fail_attempt(
            timer.step,
            live.attempt,
            token,
            SCHEDULE_TO_START_TIMEOUT,
            f"no worker took the task within the step's scheduleToStartTimeout ({waited}): is a worker polling"
            f" task queue {config.task_queue!r} for step {timer.step!r}?",
            retryable=False,
        )
        self.advance()

    def pending_approval(self, step: str) -> None:
        if step not in self.state.approvals:
            pending = ", ".join(sorted(self.state.approvals)) or "none"
            if step not in self.definition.steps and not self.definition.is_code:  # a typo: say so
                raise CommandRejected(
                    f"workflow {self.state.workflow!r} has no step {step!r} (its steps: "
                    f"{', '.join(self.definition.steps)}); execution {self.state.execution_id!r} waits for the"
                    f" approval of: {pending}"
                )
            raise CommandRejected(
                f"no approval is pending for step {step!r} of execution {self.state.execution_id!r} "
                f"(pending: {pending})"
            )

    def approve(self, command: cmd.Approve) -> None:
        self.pending_approval(command.step)
        approval = self.state.approvals[command.step]
        problem = self.overflow(command.step, approval_result(command.approver, command.payload, approval))
        if problem is not None:
            raise CommandTooLarge(f"approval of {problem}")
        if approval.timer_id is not None:
            self.do(act.CancelTimer(approval.timer_id))
        step = command.step
        result = approval_result(command.approver, command.payload, approval)
        try:
            rule = self.match_diverge(step, result=result, error=None)
        except ExpressionError as exc:
            self.emit(ev.ApprovalGranted(step, command.approver, command.payload, request_id=command.request_id))
            self.park(step, str(exc))
            return
        # A goto is recorded in the event: the jump may wait for the rest of a parallel group,
        # and a replay must know it is pending.
        goto = rule.goto if rule is not None and rule.then == "goto" else None
        rule_key = rule.key if rule is not None and goto is not None else None
        self.emit(
            ev.ApprovalGranted(step, command.approver, command.payload, rule_key, goto, request_id=command.request_id)
        )
        rerun = rule is not None and rule.then in ("retry", "fail")
        if not rerun and not self.assign(step, result):
            return
        if rule is not None and goto is None:
            self.follow_success_rule(step, self.state.steps[step].attempt, rule)
        self.advance()

    def reject(self, command: cmd.Reject) -> None:
        self.pending_approval(command.step)
        approval = self.state.approvals[command.step]
        if approval.timer_id is not None:
            self.do(act.CancelTimer(approval.timer_id))
        reason = command.reason[: limits.MAX_REASON]  # free text is cut, like a failure message
        self.emit(ev.ApprovalRejected(command.step, command.approver, reason, command.request_id))
        attempt = self.state.steps[command.step].attempt
        reason = reason or "no reason given"
        self.fail_attempt(
            command.step,
            attempt,
            ApprovalRejection(command.step, self.state.last_seq).encode(),
            "ApprovalRejected",
            f"rejected by {command.approver}: {reason}",
            retryable=False,
            dead_letter=False,
        )
        self.advance()

    def cancel(self, command: cmd.Cancel) -> None:
        if self.state.phase.terminal:
            self.decision.reply = Reply.DUPLICATE
            return
        reason = command.reason[: limits.MAX_REASON] or "cancelled"
        if self.definition.is_code and not command.force and self.request_code_cancel(reason):
            return
        if self.state.ending is None and self.ending_plan(ExecutionPhase.CANCELLED)[0]:
            self.begin_ending(ExecutionPhase.CANCELLED, reason=reason)
            return
        if self.state.ending is not None:  # a second cancel does not wait for the handlers
            reason = f"{reason} (before its compensation and finally steps finished)"
        self.stop_everything()
        self.emit(ev.ExecutionCancelled(reason))

    def redrive(self, command: cmd.Redrive) -> None:
        step = self.state.dead_letters.get(command.dead_letter_id)
        if step is None:
            raise CommandRejected(
                f"dead letter {command.dead_letter_id!r} is not open for execution {self.state.execution_id!r}"
            )
        if self.state.phase != ExecutionPhase.FAILED:
            raise CommandRejected(f"only a failed execution can be redriven; it is {self.state.phase.value}")
        if self.state.compensated:
            raise CommandRejected(
                f"execution {self.state.execution_id!r} ran its compensations: what its steps did was undone,"
                " so it cannot go on; start a new execution"
            )
        adopted = self.definition.spec_hash if command.adopt_spec else None
        self.emit(ev.DeadLetterRedriven(step, command.dead_letter_id, self.start_deadline(), adopted))
        if adopted is not None:
            self.do(act.ReplaceSpec(self.definition.spec.model_dump(mode="json", by_alias=True), adopted))
        self.arm_deadline()
        self.do(act.ResolveDeadLetter(command.dead_letter_id))
        self.wait_for_slot()  # back in line: a redrive does not pass those waiting for its key
        self.advance()

    # -- outcomes --------------------------------------------------------------------------

    def outcome_overflow(self, step: str, outcome: cmd.Outcome) -> str | None:
        match outcome:
            case cmd.OutcomeSuccess() | cmd.OutcomeSleep():
                return self.overflow(step, outcome.output)
            case cmd.OutcomeApproval():  # the data becomes part of the approved step's result
                return self.overflow(step, approval_result("", None, None) | {"data": outcome.data})
        return None

    def overflow(self, step: str, result: JSON) -> str | None:
        """Why ``result`` as the step's result would make the next tasks carry too much, or None."""
        entry = result_entry_size(step, result)
        total = self.state.carried_bytes - self.state.result_sizes.get(step, 0) + entry
        if total <= self.max_task_bytes:
            return None
        size = limits.describe_size
        return (
            f"step {step!r}: its result is {size(entry)}, and with the input and the earlier results a task"
            f" would carry {size(total)}, over the {size(self.max_task_bytes)} limit of what a task carries"
            " (twice the payload limit plus 1 MiB, less protocol overhead); pass large data by reference"
        )

    def variables(self, **extra: JSON) -> dict[str, JSON]:
        seen = {"input": self.state.input, "steps": dict(self.state.results), "vars": self.state.vars, **extra}
        if self.definition.uses_phases:  # O(steps): built only for a workflow that reads it
            seen["phases"] = {name: step.phase.value for name, step in self.state.steps.items()}
        return seen

    def assign(self, step: str, result: JSON) -> bool:
        """Run the step's ``set`` on its accepted result; False when that failed the execution.

        Every expression sees the variables as they were before any of them is assigned.
        """
        assignments = self.config(step).assign
        if not assignments:
            return True
        values: dict[str, JSON] = {}
        try:
            seen = self.variables(result=result)
            for name, program in assignments:
                where = f"steps.{step}.set.{name}"
                values[name] = to_json(evaluate(program, seen, where=where), where=where)
        except ExpressionError as exc:
            self.park(step, str(exc))
            return False
        size = variables_entry_size(self.state.vars | values)
        total = self.state.carried_bytes - self.state.vars_bytes + size
        describe = limits.describe_size
        if size > limits.MAX_VARIABLES_BYTES or total > self.max_task_bytes:
            limit, what = (
                (limits.MAX_VARIABLES_BYTES, "the limit of all variables")
                if size > limits.MAX_VARIABLES_BYTES
                else (self.max_task_bytes, "with the input and results, the limit of what a task carries")
            )
            self.fail_execution(
                f"steps.{step}.set: the variables would be {describe(size)}, over {describe(limit)}, {what}", step
            )
            return False
        self.emit(ev.VariablesSet(step, values))
        return True

    def succeed(
        self,
        step: str,
        attempt: int,
        token: str,
        output: JSON,
        *,
        sleep_ms: int | None = None,
        collected: bool = False,
    ) -> None:
        """``collected``: a forEach step's result, ``output``, which its event folds from the items'."""
        recorded = None if collected else output
        try:
            rule = self.match_diverge(step, result=output, error=None)
        except ExpressionError as exc:
            # The step did succeed: record that, then the rule that could not be evaluated.
            self.emit(ev.StepCompleted(step, attempt, token, recorded, collected=collected))
            self.park(step, str(exc))
            return
        goto = rule.goto if rule is not None and rule.then == "goto" else None
        rule_key = rule.key if rule is not None and goto else None
        self.emit(ev.StepCompleted(step, attempt, token, recorded, rule_key, goto, collected=collected))
        rerun = rule is not None and rule.then in ("retry", "fail")
        if not rerun and not self.assign(step, output):
            return
        if sleep_ms is not None and sleep_ms > 0 and not rerun:
            # A result the rules retry or fail is not accepted, so the sleep that came with it is
            # not taken: a retry beside a live sleep would leave that sleep's timer behind.
            timer_id = TimerId(self.state.execution_id, TimerKind.SLEEP, step, self.state.last_seq).encode()
            wake_at = self.now + sleep_ms
            self.emit(ev.SleepStarted(step, timer_id, wake_at))
            self.do(act.StartTimer(timer_id, wake_at))
        if rule is not None:
            self.follow_success_rule(step, attempt, rule)

    def follow_success_rule(self, step: str, attempt: int, rule: CompiledDiverge) -> None:
        if rule.then == "fail":
            self.fail_execution(
                f"step {step!r} succeeded with a result that {rule.key} sends to fail{_reason(rule.message)}", step
            )
        elif rule.then == "succeed":
            self.end_successfully(rule.key, step)
        elif rule.then == "continueAsNew":
            self.continue_by_rule(step, rule, result=self.state.results.get(step))
        elif rule.then == "retry":
            self.retry_or_dead_letter(
                step, attempt, f"RetriesExhausted: the result matched {rule.key}", seed=f"{step}/{attempt}"
            )

    def fail_attempt(
        self,
        step: str,
        attempt: int,
        token: str,
        error_type: str,
        message: str,
        retryable: bool,
        *,
        dead_letter: bool = True,
        stacktrace: str = "",
        progress: JSON = None,
    ) -> None:
        if self.state.phase.terminal:
            return
        config = self.config(step)
        error = {"type": error_type, "message": message}
        policy_retryable = retryable and error_type not in config.retry.non_retryable_errors
        described = f"{error_type}: {message}"

        def failed(**fields: Any) -> None:
            self.emit(
                ev.StepFailed(
                    step,
                    attempt,
                    token,
                    error_type,
                    message,
                    policy_retryable,
                    stacktrace=stacktrace,
                    last_progress=progress,
                    **fields,
                )
            )

        if config.handler:  # a compensation or finally step: its retry policy, then the next one
            if policy_retryable and attempt < config.retry.max_attempts:
                delay = backoff_ms(config.retry, failed_attempt=attempt, seed=token)
                failed(retry_at_ms=self.now + delay)
                self.schedule(step, attempt=attempt + 1, poll=0, visible_at=self.now + delay)
            else:
                failed()
            return
        try:
            rule = self.match_diverge(step, result=None, error=error)
            if rule is None and not (policy_retryable and attempt < config.retry.max_attempts):
                # The policy gives up on it: now the rules that wait for that have their say.
                rule = self.match_diverge(step, result=None, error=error, after_retries=True)
        except ExpressionError as exc:
            failed()
            self.park(step, str(exc))
            return
        # Continued past, the error becomes the step's result, carried by later tasks like any.
        carried = (
            None
            if rule is None or rule.then not in ("continue", "goto", "succeed", "continueAsNew")
            else self.overflow(step, {"error": error})
        )
        if carried is not None:
            failed()
            self.fail_execution(f"{ARGUMENTS_TOO_LARGE}: {carried}", step)
        elif rule is not None and rule.then == "continue":
            failed(continued=True)
        elif rule is not None and rule.then == "goto":
            failed(continued=True, rule=rule.key, goto=rule.goto)
        elif rule is not None and rule.then == "succeed":
            failed(continued=True)
            self.end_successfully(rule.key, step)
        elif rule is not None and rule.then == "continueAsNew":
            failed(continued=True)
            self.continue_by_rule(step, rule, error=error)
        elif rule is not None and rule.then == "fail":
            failed()
            self.fail_execution(
                f"step {step!r} failed ({described}); {rule.key} sends it to fail{_reason(rule.message)}", step
            )
        elif (rule is not None and rule.then == "retry") or policy_retryable:
            if attempt < config.retry.max_attempts:
                delay = backoff_ms(config.retry, failed_attempt=attempt, seed=token)
                failed(retry_at_ms=self.now + delay)
                self.schedule(step, attempt=attempt + 1, poll=0, visible_at=self.now + delay)
            else:
                failed()
                self.give_up(step, attempt, token, f"{described} (after {_attempts(attempt)})", dead_letter)
        else:
            failed()
            self.give_up(step, attempt, token, f"{described} (not retryable)", dead_letter)

    def retry_or_dead_letter(self, step: str, attempt: int, why: str, *, seed: str) -> None:
        config = self.config(step)
        if attempt < config.retry.max_attempts:
            delay = backoff_ms(config.retry, failed_attempt=attempt, seed=seed)
            self.schedule(step, attempt=attempt + 1, poll=0, visible_at=self.now + delay)
        else:
            dead_letter_id = RejectedResult(self.state.execution_id, step, attempt, self.state.last_seq + 1).encode()
            self.give_up(step, attempt, dead_letter_id, f"{why} (after {_attempts(attempt)})", True)

    def give_up(self, step: str, attempt: int, token: str, described: str, dead_letter: bool) -> None:
        if self.definition.is_code:  # the code sees the step fail (its StepFailed) and decides
            return
        if dead_letter:
            error_type, _, message = described.partition(": ")
            self.emit(ev.StepDeadLettered(step, attempt, token, error_type, message))
            self.do(act.AddDeadLetter(token, step, attempt, described))
        self.fail_execution(f"step {step!r} failed: {described}", step)

    def park(self, step: str, message: str) -> None:
        """A CEL expression of the step failed at run time: fail the execution with the step in the
        dead-letter queue, so a redrive runs it (and its expressions) again once what they read is
        fixed, instead of leaving nothing to redrive."""
        if self.finished():
            return
        attempt = self.state.steps[step].attempt if step in self.state.steps else 0
        dead_letter_id = RejectedResult(self.state.execution_id, step, attempt, self.state.last_seq + 1).encode()
        self.emit(ev.StepDeadLettered(step, attempt, dead_letter_id, EXPRESSION_ERROR, message))
        self.do(act.AddDeadLetter(dead_letter_id, step, attempt, f"{EXPRESSION_ERROR}: {message}"))
        self.fail_execution(message, step)

    def end_successfully(self, rule: str, step: str) -> None:
        """A rule's ``then: succeed``: the execution ends now, what else is in flight is cancelled."""
        if self.state.phase.terminal:
            return
        self.record_refused_jumps()
        self.stop_everything()
        self.finish(ended_by=(rule, step))

    def fail_execution(self, reason: str, step: str | None) -> None:
        if self.state.phase.terminal:
            return
        if self.state.ending is None and self.ending_plan(ExecutionPhase.FAILED)[0]:
            self.begin_ending(ExecutionPhase.FAILED, reason=reason, step=step)
            return
        self.record_refused_jumps()  # what was refused before the failure, recorded before it
        self.stop_everything()
        self.emit(ev.ExecutionFailed(reason, step))

    # -- ending: compensation and finally steps ----------------------------------------------

    def ending_plan(self, outcome: ExecutionPhase) -> tuple[list[str], int]:
        return ending.plan(self.definition, self.state, outcome)

    def begin_ending(
        self,
        outcome: ExecutionPhase,
        *,
        reason: str | None = None,
        step: str | None = None,
        output: JSON = None,
        rule: str | None = None,
    ) -> None:
        """Stop what is in flight and run the handlers one by one; the terminal event follows them."""
        self.record_refused_jumps()
        self.stop_everything()
        handlers, compensations = self.ending_plan(outcome)
        self.emit(ev.ExecutionEnding(outcome.value, handlers, reason, step, output, rule, compensations))
        self.continue_ending()

    def continue_ending(self) -> None:
        assert self.state.ending is not None
        match ending.next_handler(self.state, self.state.ending):
            case ending.Schedule(step):
                self.schedule(step, attempt=1, poll=0, visible_at=self.now)
            case ending.Concluded(failures):
                self.disarm_deadline()
                self.emit(ending.terminal_event(self.state.ending, failures))

    def stop_everything(self) -> None:
        for name, state in self.state.steps.items():
            if state.in_flight and state.token is not None:
                self.do(act.CancelTask(state.token))
                if state.phase != StepPhase.RUNNING and self.config(name).schedule_to_start_ms is not None:
                    self.do(act.CancelTimer(TimerId.for_task(TaskToken.parse(state.token)).encode()))
        for fan in self.state.fan_outs.values():
            for live in fan.live.values():
                self.do(act.CancelTask(live.token))
        for sleep in self.state.sleeps.values():
            self.do(act.CancelTimer(sleep.timer_id))
        for approval in self.state.approvals.values():
            if approval.timer_id is not None:
                self.do(act.CancelTimer(approval.timer_id))
        for wait in self.state.signal_waits.values():
            if wait.timer_id is not None:
                self.do(act.CancelTimer(wait.timer_id))
        if self.state.workflow_task is not None:
            self.do(act.CancelTask(self.state.workflow_task.token))
        self.cancel_children()
        self.disarm_deadline()

    def disarm_deadline(self) -> None:
        if self.state.deadline_timer_id is not None:
            self.do(act.CancelTimer(self.state.deadline_timer_id))

    def match_diverge(
        self, step: str, *, result: JSON, error: dict[str, str] | None, after_retries: bool = False
    ) -> CompiledDiverge | None:
        """The first rule matching the outcome; ``after_retries``: only the rules that wait for the
        retry policy to give up (``afterRetries``), otherwise only the others."""
        for rule in self.definition.diverge.get(step, ()):
            if rule.after_retries != after_retries:
                continue
            if error is not None and not rule.matches_failures:
                continue
            if error is None and not rule.matches_successes:
                continue
            if error is not None:
                if rule.match_error_type is not None and rule.match_error_type != error["type"]:
                    continue
                if rule.match_message_contains is not None and rule.match_message_contains not in error["message"]:
                    continue
            if rule.match_result is not None and not _contains(result, rule.match_result):
                continue
            # A condition that fails at run time raises ExpressionError; the caller fails the execution.
            if rule.when is not None and not evaluate_condition(
                rule.when, self.variables(result=result, error=error), where=rule.key
            ):
                continue
            if rule.then == "goto" and not self.jump_allowed(rule.key, step, rule.goto, rule.max_iterations):
                continue
            return rule
        return None

    def jump_allowed(self, key: str, step: str, target: str | None, bound: int | None) -> bool:
        """False for a backward goto whose rule already jumped ``bound`` times: that is recorded."""
        if target is None:
            return False
        backward = self.definition.position_of(target) <= self.definition.position_of(step)
        if backward and bound is not None and self.state.jump_counts.get(key, 0) >= bound:
            # Otherwise the loop is cut in silence and the execution may succeed without a sign of it.
            self.refused_jumps.append(ev.JumpLimitReached(step, target, bound, key))
            return False
        return True

    # -- moving along the timeline ---------------------------------------------------------

    def schedule(self, step: str, *, attempt: int, poll: int, visible_at: int) -> None:
        if self.state.holds:
            self.hold_step(step, attempt=attempt, poll=poll, visible_at=visible_at)
            return
        config = self.config(step)
        if config.is_approval:
            self.request_approval(step, config.approval_kind or "approval", None, config.approval_timeout_ms, None)
            return
        if config.is_timer:
            self.start_timer_step(step, config)
            return
        if config.for_each is not None:
            self.start_fan_out(step, config, visible_at)
            return
        if config.signal is not None:
            self.start_signal_wait(step, config)
            return
        if config.child is not None:
            self.start_child(step, config)
            return
        if config.continue_as_new is not None:
            self.continue_as_new(step, config)
            return
        try:
            seen = self.variables() if config.args else {}
            arguments = (
                self.code_task_arguments(step)
                if self.definition.is_code
                else task_arguments(self.definition, self.state, config, seen, max_task_bytes=self.max_task_bytes)
            )
        except ExpressionError as exc:
            self.park(step, str(exc))
            return
        size = limits.json_size(arguments["args"]) if "args" in arguments and not self.definition.is_code else 0
        if size and self.state.carried_bytes + size > self.max_task_bytes:
            self.fail_execution(
                f"steps.{step}.args: the arguments are {limits.describe_size(size)}; with the input and results"
                f" a task would carry more than the {limits.describe_size(self.max_task_bytes)} limit",
                step,
            )
            return
        task = TaskToken(self.state.execution_id, step, attempt, poll, self.state.last_seq + 1)
        token = task.encode()
        self.emit(ev.StepScheduled(step, attempt, poll, token, config.task_queue, visible_at))
        if config.schedule_to_start_ms is not None:
            # Counted from when the task becomes visible: a retry's backoff is not time spent waiting.
            self.do(act.StartTimer(TimerId.for_task(task).encode(), visible_at + config.schedule_to_start_ms))
        self.do(
            act.ScheduleTask(
                token=token,
                step=config.function or step,  # what a worker must have registered to take it
                attempt=attempt,
                poll=poll,
                task_queue=config.task_queue,
                arguments=arguments,
                visible_at_ms=visible_at,
                timeout_ms=config.timeout_ms,
                lease_ms=config.lease_ms,
                heartbeat_required=config.heartbeat_required,
                sticky_worker_id=self.code_worker() if self.definition.is_code else self.state.last_worker_id,
                **self.task_flow(),
            )
        )

    def start_timer_step(self, step: str, config: StepConfig) -> None:
        try:
            wake_at = timer_steps.wake_at(config, self.variables(), now_ms=self.now)
        except ExpressionError as exc:
            self.park(step, str(exc))
            return
        timer_id = TimerId(self.state.execution_id, TimerKind.TIMER, step, self.state.last_seq + 1).encode()
        self.emit(ev.SleepStarted(step, timer_id, wake_at, timer_step=True))
        self.do(act.StartTimer(timer_id, wake_at))

    def request_approval(self, step: str, kind: str, data: JSON, timeout_ms: int | None, token: str | None) -> None:
        timer_id = timeout_at = None
        if timeout_ms is not None:
            timer_id = TimerId(self.state.execution_id, TimerKind.APPROVAL, step, self.state.last_seq + 1).encode()
            timeout_at = self.now + timeout_ms
            self.do(act.StartTimer(timer_id, timeout_at))
        self.emit(ev.ApprovalRequested(step, kind, data, timer_id, timeout_at, token))

    def advance(self) -> None:
        """Move along the timeline as far as settled steps allow (a code workflow: let its code see)."""
        if self.definition.is_code:
            self.code_advance()
            return
        positions = self.definition.positions
        while not self.state.phase.terminal:
            if self.state.ending is not None:
                self.continue_ending()
                return
            position = self.state.position
            if position >= 0:
                members = positions[position]
                if not self.settled(members):
                    reached = False
                    for name in members:
                        # Read, not made: a step that waits (dependsOn) has no state until reached.
                        if (self.state.steps.get(name) or _NOT_REACHED).phase == StepPhase.PENDING and self.ready(name):
                            self.reach(name)
                            reached = True
                            if self.finished():
                                return
                    if not self.settled(members) and not reached:
                        return
                    continue  # a member skipped may have readied another; or the position is done
                if self.state.sleeps:
                    return
                jump = self.next_jump(members)
                if self.finished():
                    return
                if jump is not None:
                    rule, origin, target = jump
                    self.emit(ev.JumpTaken(rule, origin, target))
                    continue
            if position + 1 >= len(positions):
                self.finish()
                return
            for name in positions[position + 1]:
                if not self.config(name).depends_on:  # the others once what they wait for settled
                    self.reach(name)  # the loop goes on: past the position at once if each was skipped
                    if self.finished():
                        return

    def settled(self, members: tuple[str, ...]) -> bool:
        steps = self.state.steps
        return all(name in steps and steps[name].settled for name in members)

    def ready(self, step: str) -> bool:
        """Every step it depends on (dependsOn) has settled: succeeded, failed past, or skipped."""
        steps = self.state.steps  # read only: a step state made here would not be in a replay
        return all(name in steps and steps[name].settled for name in self.config(step).depends_on)

    def reach(self, step: str) -> None:
        """The timeline reached the step: it runs, or its ``when`` is false and it is skipped.

        With dependsOn and no ``when``, it runs when what it depends on succeeded or was skipped,
        and is skipped when one of them failed (a diverge rule continued past it), as Argo does.
        """
        config = self.config(step)
        when = config.when
        if when is None and any(self.state.steps[name].phase == StepPhase.FAILED for name in config.depends_on):
            self.emit(ev.StepSkipped(step))
            return
        if when is not None:
            try:
                runs = evaluate_condition(when, self.variables(), where=f"steps.{step}.when")
            except ExpressionError as exc:
                self.park(step, str(exc))
                return
            if not runs:
                self.emit(ev.StepSkipped(step))
                return
        self.schedule(step, attempt=1, poll=0, visible_at=self.now)

    def finished(self) -> bool:
        """Nothing more of the timeline runs: the execution ended, or is running its handlers."""
        return self.state.phase.terminal or self.state.ending is not None

    def next_jump(self, members: tuple[str, ...]) -> tuple[str, str, str] | None:
        if self.state.pending_jump is not None:
            return self.state.pending_jump
        for name in members:
            if self.state.steps[name].phase != StepPhase.SUCCEEDED:
                continue
            for rule in self.definition.branch.get(name, ()):
                variables = self.variables(result=self.state.results.get(name))
                try:
                    taken = evaluate_condition(rule.when, variables, where=rule.key)
                except ExpressionError as exc:
                    self.park(name, str(exc))
                    return None
                if taken and rule.goto is None:  # then: succeed, fail or continueAsNew, ending the run here
                    if rule.then == "succeed":
                        self.end_successfully(rule.key, name)
                    elif rule.then == "continueAsNew":
                        self.continue_by_rule(name, rule, result=self.state.results.get(name))
                    else:
                        self.fail_execution(
                            f"{rule.key} ended the execution after step {name!r}{_reason(rule.message)}", name
                        )
                    return None
                if (
                    taken
                    and rule.goto is not None
                    and self.jump_allowed(rule.key, name, rule.goto, rule.max_iterations)
                ):
                    self.record_refused_jumps()
                    return rule.key, name, rule.goto
        self.record_refused_jumps()
        return None

    def finish(self, *, ended_by: tuple[str, str] | None = None) -> None:
        """Succeed: at the end of the timeline, or early by the rule and step in ``ended_by``."""
        if self.definition.output is not None:
            try:
                output = to_json(evaluate(self.definition.output, self.variables(), where="output"), where="output")
            except ExpressionError as exc:
                self.fail_execution(str(exc), None)
                return
            size = limits.json_size(output)
            if size > self.max_task_bytes:  # GetExecution must still be able to send it
                self.fail_execution(
                    f"output: the expression gave {limits.describe_size(size)}, over the"
                    f" {limits.describe_size(self.max_task_bytes)} limit of what an execution carries",
                    None,
                )
                return
        elif ended_by is not None:  # the result of the step whose rule ended it
            output = self.state.results.get(ended_by[1])
        else:
            last = self.definition.positions[-1]
            output = self.state.results.get(last[0]) if len(last) == 1 else {n: self.state.results.get(n) for n in last}
        rule = None if ended_by is None else ended_by[0]
        if self.definition.finally_steps:
            self.begin_ending(ExecutionPhase.SUCCEEDED, output=output, rule=rule)
            return
        self.disarm_deadline()
        self.emit(ev.ExecutionSucceeded(output, rule))


_NOT_REACHED = StepState()  # never changed: what advance() reads for a step with no state yet
# What a code workflow's step that settled is configured as: nothing more runs for it.
_SETTLED_CODE_STEP = StepConfig(
    name="",
    position=-1,
    task_queue="",
    timeout_ms=0,
    lease_ms=0,
    heartbeat_required=False,
    retry=Retry(1, 0, 1.0, 0, 0.0, frozenset()),
)


def _reason(message: str | None) -> str:
    return "" if message is None else f": {message}"


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


def _bounded(delay_ms: int) -> int:
    """A delay a worker asked for, within what the model allows (the wire carries any uint64)."""
    return min(max(0, delay_ms), MAX_DURATION_MS)


def _contains(value: JSON, pattern: JSON) -> bool:
    """True when every key of `pattern` is in `value` with an equal (recursively contained) value."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and _contains(value[k], v) for k, v in pattern.items())
    return bool(value == pattern)
