"""The forEach steps' part of `decide`: one task per item of a list computed at run time.

A mixin of the decider, kept apart so `decide.py` stays about the timeline. Which items run is
folded from the events (`state.FanOut`); this module evaluates the list, makes each new item's
task, judges each item's outcome by the step's retry policy, and ends the step: with the items'
outcomes in item order once all settled, or failed by the first item whose retries ran out
(failFast; ``collect`` puts that item's error in its place and goes on).

An item's lease is not an event: the dispatcher leases it (a `LeaseTask` action, durable in the
tasks table) and the engine service checks the holder of an item's completion against that
lease. So a 10,000-item step writes one event per item outcome, not three (see
docs/architecture.md, "Fan-out").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..model import StepConfig, limits
from . import actions as act
from . import commands as cmd
from . import events as ev
from .arguments import ARGUMENTS_TOO_LARGE, task_arguments
from .decider_parts import DeciderParts
from .expressions import ExpressionError, evaluate, to_json
from .ids import TaskToken
from .retry import backoff_ms
from .state import LiveItem

__all__ = ["FanOutDecisions", "item_of", "parsed_token"]

JSON = Any


def parsed_token(token: str) -> TaskToken | None:
    """The parsed token, or None when it is malformed."""
    try:
        return TaskToken.parse(token)
    except ValueError:
        return None


def item_of(token: str) -> TaskToken | None:
    """The parsed token when it names an item of a forEach step, else None (also when malformed)."""
    parsed = parsed_token(token)
    return parsed if parsed is not None and parsed.item is not None else None


class FanOutDecisions(DeciderParts):
    """Mixed into the decider (see `DeciderParts` for what it calls on it)."""

    # -- starting -------------------------------------------------------------------------

    def start_fan_out(self, step: str, config: StepConfig, visible_at: int) -> None:
        """Evaluate the list, record it, and schedule the first ``concurrency`` items from ``visible_at``."""
        assert config.for_each is not None
        where = f"steps.{step}.forEach.items"
        try:
            items = to_json(evaluate(config.for_each.items, self.variables(), where=where), where=where)
        except ExpressionError as exc:
            self.park(step, str(exc))
            return
        problem = self.items_problem(items, where)
        if problem is not None:
            self.park(step, problem)
            return
        later = visible_at if visible_at > self.now else None  # a retry of the whole step waits its backoff
        self.emit(ev.ForEachStarted(step, items, config.for_each.concurrency, later))
        if not items:
            self.collect(step)
            return
        self.schedule_new_items(step, range(self.state.fan_outs[step].next_item))

    def items_problem(self, items: JSON, where: str) -> str | None:
        if not isinstance(items, list):
            kind = "an object" if isinstance(items, dict) else "null" if items is None else type(items).__name__
            return f"{where}: gave {kind}, not a list"
        if len(items) > limits.MAX_FOR_EACH_ITEMS:
            return f"{where}: gave {len(items):,} items, over the limit of {limits.MAX_FOR_EACH_ITEMS:,}"
        size = limits.json_size(items)
        if size > self.max_input_bytes:
            describe = limits.describe_size
            return (
                f"{where}: the list is {describe(size)}, over the {describe(self.max_input_bytes)} payload limit;"
                " pass large items by reference"
            )
        return None

    def schedule_new_items(self, step: str, candidates: Iterable[int]) -> None:
        """The tasks of those ``candidates`` the event just emitted scheduled (their ``seq`` is its seq)."""
        fan = self.state.fan_outs.get(step)
        if fan is None:
            return
        seq = self.state.last_seq
        config = self.config(step)
        for item in candidates:
            live = fan.live.get(item)
            if live is not None and live.seq == seq and not self.schedule_item(step, config, item, live):
                return

    def schedule_item(self, step: str, config: StepConfig, item: int, live: LiveItem) -> bool:
        """One item's task: the step's arguments with ``item`` and ``index``; False if that ended the execution."""
        if live.held:
            return True  # made while paused: scheduled when the execution resumes (engine/pause.py)
        value = self.state.fan_outs[step].items[item]
        try:
            seen = self.variables(item=value, index=item) if config.args else {}
            arguments = task_arguments(self.definition, self.state, config, seen, max_task_bytes=self.max_task_bytes)
        except ExpressionError as exc:
            self.park(step, str(exc))
            return False
        arguments["item"], arguments["index"] = value, item
        size = limits.json_size(value) + (limits.json_size(arguments["args"]) if "args" in arguments else 0)
        if self.state.carried_bytes + size > self.max_task_bytes:
            self.fail_execution(
                f"steps.{step}: item {item} with its arguments is {limits.describe_size(size)}; with the input and"
                f" results a task would carry more than the {limits.describe_size(self.max_task_bytes)} limit",
                step,
            )
            return False
        self.do(
            act.ScheduleTask(
                token=live.token,
                step=config.function or step,
                attempt=live.attempt,
                poll=0,
                task_queue=config.task_queue,
                arguments=arguments,
                visible_at_ms=live.visible_at_ms,
                timeout_ms=config.timeout_ms,
                lease_ms=config.lease_ms,
                heartbeat_required=config.heartbeat_required,
                sticky_worker_id=None,  # items spread over the workers, not after the previous step
                **self.task_flow(),
            )
        )
        return True

    # -- an item's task --------------------------------------------------------------------

    def live_item(self, parsed: TaskToken, token: str) -> LiveItem | None:
        """The item's live task when ``token`` is it; sets the reply otherwise."""
        fan = self.state.fan_outs.get(parsed.step)
        item = parsed.item
        assert item is not None
        live = None if fan is None or self.state.phase.terminal else fan.live.get(item)
        if live is None or live.token != token:
            self.refuse(duplicate=fan is not None and item < len(fan.settled) and bool(fan.settled[item]))
            return None
        return live

    def item_started(self, parsed: TaskToken, command: cmd.TaskStarted) -> None:
        """Lease an item's task: an action only, the lease is the tasks table's (see the module)."""
        live = self.live_item(parsed, command.token)
        if live is None:
            return
        config = self.config(parsed.step)
        self.do(
            act.LeaseTask.now(
                command.token,
                command.worker_id,
                lease_ms=config.lease_ms,
                timeout_ms=config.timeout_ms,
                now_ms=self.now,
                last_progress=None,
                run=self.state.steps[parsed.step].run,
            )
        )

    def item_completed(self, parsed: TaskToken, command: cmd.TaskCompleted) -> None:
        live = self.live_item(parsed, command.token)
        if live is None:
            return
        step, item = parsed.step, parsed.item
        assert item is not None
        self.do(act.DeleteTask(command.token))
        match command.outcome:
            case cmd.OutcomeSuccess(output=output):
                fan = self.state.fan_outs[step]
                total = self.state.carried_bytes + fan.outcome_bytes + limits.json_size(output) + 1
                if total > self.max_task_bytes:
                    describe = limits.describe_size
                    self.item_failed(
                        step,
                        item,
                        live,
                        ARGUMENTS_TOO_LARGE,
                        f"with this item's output the step's result would be {describe(total)} with the input and"
                        f" results, over the {describe(self.max_task_bytes)} limit of what a task carries",
                        retryable=False,
                    )
                    return
                before = self.state.fan_outs[step].next_item
                self.emit(ev.ItemCompleted(step, item, live.attempt, command.token, output))
                self.after_item(step, before)
            case cmd.OutcomeFailure(error_type=error_type, message=message, retryable=retryable):
                self.item_failed(step, item, live, error_type, message, retryable=retryable)
            case cmd.OutcomeCancelled(message=message):
                self.item_failed(step, item, live, "Cancelled", message, retryable=True)
            case _:
                what = type(command.outcome).__name__.removeprefix("Outcome")
                self.item_failed(
                    step,
                    item,
                    live,
                    "UnsupportedOutcome",
                    f"an item of a forEach step succeeds or fails; it cannot end with {what}",
                    retryable=False,
                )

    def item_timed_out(self, parsed: TaskToken, command: cmd.TaskTimedOut, error_type: str, message: str) -> None:
        live = self.live_item(parsed, command.token)
        if live is None:
            return
        assert parsed.item is not None
        self.do(act.DeleteTask(command.token))
        self.item_failed(parsed.step, parsed.item, live, error_type, message, retryable=True)

    def item_failed(
        self, step: str, item: int, live: LiveItem, error_type: str, message: str, *, retryable: bool
    ) -> None:
        """The step's retry policy, per item; then collect the error, or fail the step (failFast)."""
        retry = self.config(step).retry
        if retryable and error_type not in retry.non_retryable_errors and live.attempt < retry.max_attempts:
            delay = backoff_ms(retry, failed_attempt=live.attempt, seed=live.token)
            self.emit(ev.ItemFailed(step, item, live.attempt, live.token, error_type, message, self.now + delay))
            self.schedule_new_items(step, (item,))
            return
        before = self.state.fan_outs[step].next_item
        self.emit(ev.ItemFailed(step, item, live.attempt, live.token, error_type, message))
        fan = self.state.fan_outs[step]
        if fan.collect:
            self.after_item(step, before)
            return
        for other in fan.live.values():  # failFast: the other items stop
            self.do(act.CancelTask(other.token))
        attempts = "1 attempt" if live.attempt == 1 else f"{live.attempt} attempts"
        self.fail_attempt(
            step,
            self.state.steps[step].attempt,
            self.step_token(step),
            error_type,
            f"item {item} of {len(fan.items)} failed after {attempts}: {message}",
            False,
        )

    def after_item(self, step: str, next_before: int) -> None:
        """An item settled: schedule the item its event scheduled, or collect the step when all have."""
        fan = self.state.fan_outs.get(step)
        if fan is not None:
            self.schedule_new_items(step, range(next_before, fan.next_item))
        if fan is not None and fan.finished and not self.state.phase.terminal:
            self.collect(step)

    def collect(self, step: str) -> None:
        """Every item settled: the step succeeds with their outcomes in item order."""
        fan = self.state.fan_outs[step]
        attempt, token = self.state.steps[step].attempt, self.step_token(step)
        problem = self.overflow(step, fan.outcomes)
        if problem is not None:
            self.fail_attempt(step, attempt, token, ARGUMENTS_TOO_LARGE, problem, False)
            return
        self.succeed(step, attempt, token, list(fan.outcomes), collected=True)

    def step_token(self, step: str) -> str:
        """The token the step's own outcome event records: unique (the seq of that event)."""
        attempt = self.state.steps[step].attempt
        return TaskToken(self.state.execution_id, step, attempt, 0, self.state.last_seq + 1).encode()
