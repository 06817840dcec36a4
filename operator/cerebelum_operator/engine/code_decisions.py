"""Code workflows: the part of `decide` that runs workflow tasks and records their commands.

A mixin of the decider (docs/code-workflows-protocol.md). A code workflow has no timeline: where
`decide` would move along one (`advance`), it schedules a workflow task when the code has events
to see. The commands a task returns are checked (`code_commands.normalise_commands`), recorded in
one `WorkflowTaskCompleted`, and run as steps on the machinery YAML steps use, so every
guarantee, limit and the status projection are the same. A task that fails (non-determinism, a
lost worker, commands refused) is recorded and runs again after a backoff; the execution waits,
its phase unchanged, until one completes.
"""

from __future__ import annotations

from typing import Any

from ..model import limits
from ..model.durations import format_duration
from . import actions as act
from . import commands as cmd
from . import events as ev
from .code_commands import CommandsInvalid, normalise_commands
from .decider_parts import DeciderParts
from .ids import WORKFLOW_TASK_PREFIX, WORKFLOW_TASK_STEP, TaskToken

__all__ = ["MAX_CLOCK_SKEW_MS", "WORKFLOW_TASK_TIMEOUT_MS", "CodeDecisions", "workflow_task_retry_delay_ms"]

JSON = Any
# A worker answers a workflow task within this or loses it to another (a replay is fast: the
# code only waits on the engine). Also the lease: a dead worker's task moves on after it.
WORKFLOW_TASK_TIMEOUT_MS = 10_000
_MAX_RETRY_DELAY_MS = 10 * 60_000
# How far ahead of the engine's clock a worker's clock may be for its continuation to count (hosts
# kept by NTP are within milliseconds). The code's time never goes back: a workflow task that starts
# before the code's last time is given that time (`workflow_task_started`).
MAX_CLOCK_SKEW_MS = 1_000


def workflow_task_retry_delay_ms(failures_before: int) -> int:
    """1 s after the first failure, doubling to 10 minutes: a broken deployment costs few events."""
    return int(min(1000 * 2 ** min(failures_before, 20), _MAX_RETRY_DELAY_MS))


class CodeDecisions(DeciderParts):
    """Mixed into the decider (see `DeciderParts` for what it calls on it)."""

    # -- scheduling --------------------------------------------------------------------------

    def code_advance(self) -> None:
        """Schedule a workflow task when the code has events to see and none is scheduled or running."""
        state = self.state
        if state.phase.terminal or state.workflow_task is not None or not state.code_pending or state.holds:
            return
        self.schedule_workflow_task(visible_at=self.now)

    def schedule_workflow_task(self, *, visible_at: int) -> None:
        code = self.definition.code
        assert code is not None
        attempt = self.state.workflow_task_failures + 1
        token = TaskToken(self.state.execution_id, WORKFLOW_TASK_STEP, attempt, 0, self.state.last_seq + 1).encode()
        self.emit(ev.WorkflowTaskScheduled(token, attempt, code.task_queue, visible_at))
        sticky = self.state.sticky
        self.do(
            act.ScheduleTask(
                token=token,
                step=WORKFLOW_TASK_PREFIX + code.function,
                attempt=attempt,
                poll=0,
                task_queue=code.task_queue,
                arguments={},  # the worker service adds the history as it hands the task out
                visible_at_ms=visible_at,
                timeout_ms=WORKFLOW_TASK_TIMEOUT_MS,
                lease_ms=WORKFLOW_TASK_TIMEOUT_MS,
                heartbeat_required=False,
                sticky_worker_id=sticky[0] if sticky is not None else None,
                **self.task_flow(rate_limited=False),
            )
        )

    # -- the workflow task's life ----------------------------------------------------------------

    def workflow_task_started(self, command: cmd.TaskStarted) -> None:
        task = self.state.workflow_task
        if task is None or task.token != command.token or task.worker_id is not None:
            self.refuse(duplicate=False)
            return
        behind = self.state.code_time_ms > self.now  # a continuation's worker ran ahead of this clock
        self.emit(ev.WorkflowTaskStarted(command.token, command.worker_id, self.state.code_time_ms if behind else None))
        self.do(
            act.LeaseTask.now(
                command.token,
                command.worker_id,
                lease_ms=WORKFLOW_TASK_TIMEOUT_MS,
                timeout_ms=WORKFLOW_TASK_TIMEOUT_MS,
                now_ms=self.now,
                last_progress=None,
                run=1,
            )
        )

    def workflow_task_completed(self, command: cmd.TaskCompleted) -> None:
        task = self.state.workflow_task
        if (
            self.state.phase.terminal
            or task is None
            or task.token != command.token
            or task.worker_id is None
            or (command.worker_id is not None and task.worker_id != command.worker_id)
        ):
            self.refuse(duplicate=False)
            return
        self.do(act.DeleteTask(command.token))
        outcome = command.outcome
        match outcome:
            case cmd.OutcomeWorkflowCommands():
                self.record_commands(command.token, task.worker_id, outcome.commands)
            case cmd.OutcomeFailure():
                stacktrace = limits.cut_middle(outcome.stacktrace, limit=limits.MAX_STACKTRACE, what="stack trace")
                self.workflow_task_failed(command.token, outcome.error_type, outcome.message, stacktrace)
            case _:
                self.workflow_task_failed(
                    command.token,
                    "WorkflowTaskError",
                    f"a workflow task is answered with workflow commands or a failure, not {type(outcome).__name__}",
                )

    def record_commands(self, token: str, worker_id: str, sent: JSON) -> bool:
        """Check, record and run what the code issued for the live task ``token``; False when refused."""
        code = self.definition.code
        assert code is not None
        try:
            commands = normalise_commands(self.state, code, sent)
        except CommandsInvalid as exc:
            self.workflow_task_failed(token, "InvalidCommands", str(exc))
            return False
        self.emit(ev.WorkflowTaskCompleted(token, worker_id, commands))
        for entry in commands:
            self.run_command(entry)
            if self.ended():  # a terminal command, or a limit that ended the execution
                return True
        self.code_advance()
        return True

    # -- continuations: the code run on a step's result by the step's worker ------------------------

    def may_continue(self, worker_id: str | None, continuation: cmd.Continuation) -> bool:
        """Whether a continuation sent with a step's outcome may stand for the next workflow task.

        Judged before the outcome: the code must have seen everything (no task scheduled, nothing
        pending), and the sender must hold its instance where the continuation says (the sticky
        worker, at its last task's seq). The code's time must not be before its previous time (so
        `now()` never goes back) nor more than `MAX_CLOCK_SKEW_MS` after the engine's now.
        """
        state = self.state
        return (
            self.definition.is_code
            and worker_id is not None
            and not state.phase.terminal
            and state.workflow_task is None
            and not state.code_pending
            and not state.holds
            and state.sticky == (worker_id, continuation.after_seq)
            and state.code_time_ms <= continuation.time_ms <= self.now + MAX_CLOCK_SKEW_MS
        )

    def continue_inline(self, step: str, mark: int, worker_id: str, continuation: cmd.Continuation) -> bool:
        """Record the continuation as a workflow task started and completed by its worker; False (and
        nothing recorded) unless the step's success, as recorded from ``mark`` on, is all the code sees."""
        new = self.decision.events[mark:]
        if (
            len(new) != 1
            or not isinstance(new[0].event, ev.StepCompleted)
            or new[0].event.step != step
            or self.state.phase.terminal
            or self.state.workflow_task is not None
        ):
            return False
        code = self.definition.code
        assert code is not None
        attempt = self.state.workflow_task_failures + 1
        token = TaskToken(self.state.execution_id, WORKFLOW_TASK_STEP, attempt, 0, self.state.last_seq + 1).encode()
        self.emit(ev.WorkflowTaskScheduled(token, attempt, code.task_queue, self.now))
        started = self.emit(ev.WorkflowTaskStarted(token, worker_id, time_ms=continuation.time_ms))
        if self.record_commands(token, worker_id, continuation.commands):
            self.decision.continued_seq = started
        return True

    def code_worker(self) -> str | None:
        """The worker holding the code's instance: its steps go there first, where a step's result can
        continue the code at once (`continue_inline`)."""
        sticky = self.state.sticky
        return sticky[0] if sticky is not None else None

    def workflow_task_timed_out(self, command: cmd.TaskTimedOut) -> None:
        task = self.state.workflow_task
        if self.state.phase.terminal or task is None or task.token != command.token:
            self.refuse(duplicate=False)
            return
        self.do(act.DeleteTask(command.token))
        waited = format_duration(WORKFLOW_TASK_TIMEOUT_MS)
        self.workflow_task_failed(
            command.token,
            "WorkflowTaskTimedOut",
            f"worker {task.worker_id!r} did not answer the workflow task within {waited}: another worker replays it",
            immediately=True,
        )

    def workflow_task_failed(
        self, token: str, error_type: str, message: str, stacktrace: str = "", *, immediately: bool = False
    ) -> None:
        failures = self.state.workflow_task_failures
        retry_at = self.now + (0 if immediately and failures == 0 else workflow_task_retry_delay_ms(failures))
        self.emit(ev.WorkflowTaskFailed(token, error_type, message[: limits.MAX_MESSAGE], retry_at, stacktrace))
        self.schedule_workflow_task(visible_at=retry_at)

    def ended(self) -> bool:
        return self.state.phase.terminal

    # -- commands ---------------------------------------------------------------------------------

    def run_command(self, entry: dict[str, JSON]) -> None:
        """Act on one recorded command (its step's config is in the state since the event)."""
        kind, step = entry["type"], entry.get("step")
        if step is not None:
            config = self.config(step)
            match kind:
                case "step":
                    self.schedule(step, attempt=1, poll=0, visible_at=self.now)
                case "sleep":
                    self.start_timer_step(step, config)
                case "approval":
                    kind_name = config.approval_kind or "approval"
                    self.request_approval(step, kind_name, entry.get("data"), config.approval_timeout_ms, None)
                case "waitSignal":
                    self.start_signal_wait(step, config)
                case "child":
                    self.start_child(step, config)
            return
        match kind:
            case "complete":
                self.stop_everything()
                self.emit(ev.ExecutionSucceeded(entry.get("output")))
            case "fail":
                self.fail_execution(f"{entry['errorType']}: {entry['message']}", None)
            case "cancelled":
                self.stop_everything()
                reason = self.state.cancel_requested or entry.get("message") or "cancelled"
                self.emit(ev.ExecutionCancelled(reason))
            case "continueAsNew":
                self.continue_with(None, entry.get("input"))

    def request_code_cancel(self, reason: str) -> bool:
        """The first cancel of a running code workflow is the code's to handle: True when so."""
        if self.state.cancel_requested is not None:
            return False  # a second cancel stops it at once
        self.emit(ev.ExecutionCancelRequested(reason))
        self.code_advance()
        return True

    def code_task_arguments(self, step: str) -> dict[str, JSON]:
        """A code step's task: the arguments the code gave it (``input`` among them, if any)."""
        args = self.state.code_args.get(step)
        arguments: dict[str, JSON] = {"input": None, "results": {}, "args": args if isinstance(args, dict) else {}}
        if isinstance(args, dict) and "input" in args:
            arguments["input"] = args["input"]
        return arguments
