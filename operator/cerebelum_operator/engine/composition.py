"""Signals, child workflows and continue-as-new: the part of `decide` that reaches other executions.

A mixin of the decider, kept apart so `decide.py` stays about the timeline.

- **Signals** are queued in the folded state (`SignalReceived`), in order, and a signal step takes
  the oldest one of its name (`SignalDelivered`, then the step's `StepCompleted`): each signal is
  taken once, by one step, and one sent before anyone waits for it is kept until a step does.
- **Children and next runs** are started by messages (`SendMessage` actions) that the store keeps
  in its outbox in the decision's own transaction and the runtime relays after it commits
  (`runtime/relay.py`): a child's start, its cancel when the parent ends, and its end told back to
  the parent (`ChildFinished`) all survive a crash between the decision and their delivery. Ids
  are deterministic (`ids.child_id`, `ids.next_run_id`), so a message relayed twice starts nothing
  twice.
"""

from __future__ import annotations

from typing import Any

from ..model import CompiledBranch, CompiledDiverge, InputInvalid, StepConfig, limits
from ..model.durations import format_duration
from . import actions as act
from . import commands as cmd
from . import events as ev
from .arguments import ARGUMENTS_TOO_LARGE
from .command_checks import CommandRejected, CommandTooLarge
from .decider_parts import DeciderParts
from .expressions import ExpressionError, evaluate, to_json
from .ids import TimerId, TimerKind, child_id, message_id, next_run_id
from .state import ExecutionPhase, QueuedSignal
from .timer_steps import rfc3339

__all__ = ["CARRIED_REQUEST_IDS", "SIGNAL_TIMED_OUT", "CompositionDecisions", "signal_result"]

JSON = Any
SIGNAL_TIMED_OUT = "SignalTimedOut"
CARRIED_REQUEST_IDS = 1_000  # the most recent request ids a next run still knows as delivered


def signal_result(signal: QueuedSignal) -> dict[str, JSON]:
    """What a signal step gives later steps (and its diverge rules)."""
    return {
        "name": signal.name,
        "data": signal.data,
        "sender": signal.sender,
        "receivedAt": rfc3339(signal.received_at_ms),
    }


class CompositionDecisions(DeciderParts):
    """Mixed into the decider (see `DeciderParts` for what it calls on it)."""

    messages_sent: int
    first_seq: int

    # -- messages ---------------------------------------------------------------------------

    def send(self, kind: str, target: str, body: dict[str, JSON]) -> None:
        """A message for the outbox; its id is unique: this decision's first seq and a counter."""
        index = self.messages_sent
        self.messages_sent += 1
        self.do(
            act.SendMessage(
                message_id(self.state.execution_id, self.first_seq, index), kind, target, self.first_seq, body
            )
        )

    def tell_parent(self) -> None:
        """This run ended the logical execution: its parent's child step hears how."""
        state = self.state
        if state.parent_id is None or state.phase == ExecutionPhase.CONTINUED_AS_NEW:
            return
        body = {
            "command": "childFinished",
            "childId": state.chain_id,
            "phase": state.phase.value,
            "output": state.output,
            "error": state.error,
        }
        self.send("command", state.parent_id, body)

    # -- signals ----------------------------------------------------------------------------

    def signal(self, command: cmd.Signal) -> None:
        state = self.state
        # First: a sender retrying a signal that was delivered hears so, even once the execution ended.
        if command.request_id is not None and command.request_id in state.signal_request_ids:
            self.refuse(duplicate=True)
            return
        if state.phase.terminal:
            raise CommandRejected(
                f"execution {state.execution_id!r} has ended ({state.phase.value}): no signal can reach it any more"
            )
        names = self.definition.signal_names
        if command.name not in names and not self.definition.is_code:  # code may wait for any name
            waits = ", ".join(sorted(names)) or "none"
            raise CommandRejected(
                f"workflow {state.workflow!r} has no signal step for a signal named {command.name!r}"
                f" (its signal steps wait for: {waits})"
            )
        size = limits.json_size(command.data)
        describe = limits.describe_size
        if len(state.signals) >= limits.MAX_QUEUED_SIGNALS:
            raise CommandTooLarge(
                f"execution {state.execution_id!r} already holds {len(state.signals)} signals no step took yet,"
                f" the limit: it takes them only as its signal steps run"
            )
        if state.signal_bytes + size > limits.MAX_QUEUED_SIGNAL_BYTES:
            raise CommandTooLarge(
                f"the signal's data is {describe(size)}; with the {describe(state.signal_bytes)} of signals"
                f" already queued it passes the {describe(limits.MAX_QUEUED_SIGNAL_BYTES)} limit of the queue"
            )
        self.emit(ev.SignalReceived(command.name, command.data, command.sender, command.request_id))
        self.deliver_signals()
        self.advance()

    def deliver_signals(self) -> None:
        """Give each waiting step (the earliest waiter first) the oldest queued signal of its name."""
        for step, wait in sorted(self.state.signal_waits.items(), key=lambda entry: entry[1].seq):
            queued = self._oldest(wait.name)
            if queued is not None and step in self.state.signal_waits:
                if wait.timer_id is not None:
                    self.do(act.CancelTimer(wait.timer_id))
                self._deliver(step, queued)

    def start_signal_wait(self, step: str, config: StepConfig) -> None:
        """A signal step is reached: it takes a queued signal at once, or waits for one."""
        assert config.signal is not None
        queued = self._oldest(config.signal.name)
        if queued is not None:
            self._deliver(step, queued)
            return
        timer_id = timeout_at = None
        if config.signal.timeout_ms is not None:
            timer_id = TimerId(self.state.execution_id, TimerKind.SIGNAL, step, self.state.last_seq + 1).encode()
            timeout_at = self.now + config.signal.timeout_ms
            self.do(act.StartTimer(timer_id, timeout_at))
        self.emit(ev.SignalWaitStarted(step, config.signal.name, timer_id, timeout_at))

    def signal_timed_out(self, timer_id: str) -> bool:
        """The timer of a signal step's timeout fired: the step fails (not retried); False if not one."""
        for step, wait in self.state.signal_waits.items():
            if wait.timer_id == timer_id:
                self.emit(ev.SignalWaitTimedOut(step))
                waited = format_duration(self.config(step).signal.timeout_ms or 0)  # type: ignore[union-attr]
                self.fail_attempt(
                    step,
                    self.state.steps[step].attempt,
                    timer_id,
                    SIGNAL_TIMED_OUT,
                    f"no signal {wait.name!r} came within the step's timeout ({waited})",
                    retryable=False,
                    dead_letter=False,
                )
                self.advance()
                return True
        return False

    def _oldest(self, name: str) -> QueuedSignal | None:
        return next((queued for queued in self.state.signals if queued.name == name), None)

    def _deliver(self, step: str, queued: QueuedSignal) -> None:
        result = signal_result(queued)
        problem = self.overflow(step, result)
        self.emit(ev.SignalDelivered(step, queued.seq))
        attempt, token = self.state.steps[step].attempt, f"signal:{step}:{queued.seq}"
        if problem is not None:
            self.fail_attempt(step, attempt, token, ARGUMENTS_TOO_LARGE, problem, retryable=False)
        else:
            self.succeed(step, attempt, token, result)

    # -- children ---------------------------------------------------------------------------

    def start_child(self, step: str, config: StepConfig) -> None:
        spec = config.child
        assert spec is not None
        if self.definition.is_code:  # the code gave the input itself
            input = self.state.code_args.get(step)
        else:
            input = self._evaluated_input(step, spec.input, f"steps.{step}.child.input", default=None)
        if input is _PARKED:
            return
        live = self.state.steps.get(step)
        fresh = live is None or live.attempt == 0
        run = (live.run if live is not None else 0) + (1 if fresh else 0)
        attempt = 1 if fresh or live is None else live.attempt + 1
        child = child_id(self.state.execution_id, step, run, attempt)
        self.emit(ev.ChildStarted(step, child, spec.workflow, input, abandon=spec.on_parent_cancel == "abandon"))
        body = {
            "workflow": spec.workflow,
            "namespaceOf": self.state.workflow,  # the child's Workflow is looked up in the parent's namespace
            "input": input,
            "parentId": self.state.execution_id,
            "parentStep": step,
        }
        self.send("start", child, body)

    def child_finished(self, command: cmd.ChildFinished) -> None:
        state = self.state
        found = next(
            (step for step, index in state.live_children.items() if state.children[index].child_id == command.child_id),
            None,
        )
        if found is None or state.phase.terminal:
            self.refuse(duplicate=False)  # told twice, or the step moved on (cancelled, abandoned)
            return
        link = state.children[state.live_children[found]]
        self.emit(ev.ChildEnded(found, command.child_id, command.phase))
        attempt, token = state.steps[found].attempt, f"child:{command.child_id}"
        if command.phase == ExecutionPhase.SUCCEEDED.value:
            problem = self.overflow(found, command.output)
            if problem is None:
                self.succeed(found, attempt, token, command.output)
            else:
                self.fail_attempt(found, attempt, token, ARGUMENTS_TOO_LARGE, problem, retryable=False)
        else:
            error_type = "ChildCancelled" if command.phase == ExecutionPhase.CANCELLED.value else "ChildFailed"
            reason = command.error or command.phase.lower()
            message = (
                f"child execution {command.child_id!r} of workflow {link.workflow!r} {command.phase.lower()}: {reason}"
            )
            self.fail_attempt(found, attempt, token, error_type, message[: limits.MAX_MESSAGE], retryable=True)
        self.advance()

    def cancel_children(self) -> None:
        """The execution stops: its live children are cancelled, unless their step abandons them."""
        for index in self.state.live_children.values():
            link = self.state.children[index]
            if not link.abandon:
                reason = f"its parent execution {self.state.execution_id!r} ended"
                self.send("command", link.child_id, {"command": "cancel", "reason": reason})

    # -- continue-as-new --------------------------------------------------------------------

    def continue_as_new(self, step: str, config: StepConfig) -> None:
        spec = config.continue_as_new
        assert spec is not None
        where = f"steps.{step}.continueAsNew.input"
        input = self._evaluated_input(step, spec.input, where, default=self.state.input)
        if input is _PARKED:
            return
        self.continue_with(step, input, where=where)

    def continue_by_rule(self, step: str, rule: CompiledDiverge | CompiledBranch, **seen: JSON) -> None:
        """A rule's ``then: continueAsNew``: the next run's input is its CEL over what the rule saw
        (``seen``: the step's result or error), or this run's input."""
        where = f"{rule.key}.input"
        input = self._evaluated_input(step, rule.input, where, default=self.state.input, seen=seen)
        if input is _PARKED:
            return
        self.continue_with(step, input, where=where)

    def continue_with(self, step: str | None, input: JSON, *, where: str = "continueAsNew") -> None:
        """End this run and start the next with ``input`` (a step's, or a code workflow's command)."""
        try:
            input = self.definition.with_input_defaults(input)
            self.definition.validate_input(input)
        except InputInvalid as exc:
            self.fail_execution(f"{where}: the next run's input is invalid: {exc}", step)
            return
        state = self.state
        run = state.run + 1
        next_id = next_run_id(state.chain_id, run)
        self.record_refused_jumps()
        self.stop_everything()
        self.emit(ev.ExecutionContinuedAsNew(next_id, input, step))
        body = {
            "workflow": state.workflow,
            "input": input,
            "continuedFrom": state.execution_id,
            "firstRunId": state.chain_id,
            "run": run,
            "parentId": state.parent_id,
            "parentStep": state.parent_step,
            # Signals no step took are the next run's, in order; the last request ids keep resent
            # signals duplicates across the runs.
            "signals": [{"name": s.name, "data": s.data, "sender": s.sender} for s in state.signals],
            "requestIds": list(state.signal_request_ids)[-CARRIED_REQUEST_IDS:],
        }
        self.send("start", next_id, body)

    def _evaluated_input(
        self, step: str, program: Any, where: str, *, default: JSON, seen: dict[str, JSON] | None = None
    ) -> JSON:
        if program is None:
            return default
        try:
            value = to_json(evaluate(program, self.variables(**(seen or {})), where=where), where=where)
        except ExpressionError as exc:
            self.park(step, str(exc))
            return _PARKED
        size = limits.json_size(value)
        if size > self.max_input_bytes:
            describe = limits.describe_size
            limit = describe(self.max_input_bytes)
            self.fail_execution(f"{where}: the expression gave {describe(size)}, over the {limit} payload limit", step)
            return _PARKED
        return value


_PARKED: Any = object()  # the input could not be made: the execution failed or was parked
