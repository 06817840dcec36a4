"""Runs one task's step: binds its arguments, runs it, and builds the report of how it ended."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

from cerebelum.context import StepContext
from cerebelum.errors import ApplicationError, CancelReason, NonRetryableError
from cerebelum.heartbeat import Heartbeater, HeartbeatRpc
from cerebelum.reports import cancelled_report, failure_report, value_report
from cerebelum.steps import StepDefinition
from cerebelum.v1 import worker_pb2

__all__ = ["Attempt", "TaskExecutor", "conclude", "run_attempt"]

log = logging.getLogger("cerebelum.worker")

_LOST: frozenset[CancelReason] = frozenset({"lease_lost", "heartbeat_timeout"})
"""The task is no longer this worker's: its outcome is dropped."""


class Attempt:
    """The cancellation state of one running task."""

    __slots__ = ("ctx", "in_step", "is_async", "reason", "stopping", "task")

    def __init__(self, ctx: StepContext, task: asyncio.Task[Any], is_async: bool) -> None:
        self.ctx = ctx
        self.task = task
        self.is_async = is_async
        self.in_step = False
        self.reason: CancelReason | None = None
        self.stopping = False

    def cancel(self, reason: CancelReason) -> None:
        """Stop the step: async steps get ``CancelledError``; sync steps see ``ctx.cancelled`` and
        ``StepCancelled`` from their next ``ctx.heartbeat()``.

        On shutdown a sync step is abandoned (its thread cannot be interrupted).
        """
        if self.reason is None or reason in _LOST:
            self.reason = reason
        self.ctx._mark_cancelled(reason)
        if self.in_step and not self.stopping and (self.is_async or reason == "shutdown"):
            self.stopping = True
            self.task.cancel()


class TaskExecutor:
    """Runs tasks and returns their ``CompleteTaskRequest`` (``None`` when the lease was lost)."""

    def __init__(
        self,
        *,
        steps: Mapping[str, StepDefinition],
        worker_id: str,
        heartbeat_rpc: HeartbeatRpc,
        thread_pool: Executor | None,
    ) -> None:
        self._steps = steps
        self._worker_id = worker_id
        self._heartbeat_rpc = heartbeat_rpc
        self._thread_pool = thread_pool
        self._attempts: dict[str, Attempt] = {}

    def cancel_all(self, reason: CancelReason) -> None:
        for attempt in list(self._attempts.values()):
            attempt.cancel(reason)

    async def run(self, task: worker_pb2.Task) -> worker_pb2.CompleteTaskRequest | None:
        token, worker_id = task.task_token, self._worker_id
        definition = self._steps.get(task.step)  # the function to run, which may serve many workflow steps
        if definition is None:
            serving = f" (to run step {task.workflow_step!r})" if task.workflow_step not in ("", task.step) else ""
            unknown = NonRetryableError(f"this worker has no step {task.step!r}{serving}", type="UnknownStep")
            return failure_report(token, worker_id, unknown)
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        assert current is not None
        ctx = StepContext(task, worker_id, loop)
        attempt = Attempt(ctx, current, definition.is_async)
        heartbeater = Heartbeater(
            loop=loop,
            rpc=self._heartbeat_rpc,
            task=task,
            worker_id=worker_id,
            ctx=ctx,
            on_cancel=attempt.cancel,
        )
        self._attempts[token] = attempt
        try:
            value, error = await run_attempt(definition, task, attempt, self._thread_pool)
            return conclude(task, worker_id, attempt, value, error)
        finally:
            heartbeater.stop()
            del self._attempts[token]


async def run_attempt(
    definition: StepDefinition, task: worker_pb2.Task, attempt: Attempt, thread_pool: Executor | None
) -> tuple[Any, BaseException | None]:
    """Call the step in ``attempt`` (whose ``task`` must be the current task): its value, or what it raised."""
    ctx, current = attempt.ctx, attempt.task
    value: Any = None
    error: BaseException | None = None
    try:
        arguments = _arguments(task)
        ctx._set_results(arguments.get("results"))
        ctx._set_vars(arguments.get("vars"))
        ctx._set_outcome(arguments.get("outcome"))
        ctx._set_args(arguments.get("args"))
        ctx._set_item(arguments.get("item"), arguments.get("index"))
        args, kwargs = definition.bind(arguments, ctx)
        attempt.in_step = True
        if definition.is_async:
            value = await definition.fn(*args, **kwargs)
        else:
            call = functools.partial(definition.fn, *args, **kwargs)
            value = await asyncio.get_running_loop().run_in_executor(thread_pool, call)
        ctx._check_returned(value)
    except asyncio.CancelledError as exc:
        if not attempt.stopping and current.cancelling():
            raise  # not ours: the worker itself is being torn down
        error = exc
    except Exception as exc:
        error = exc
    attempt.in_step = False
    if attempt.stopping and current.cancelling():
        current.uncancel()
    return value, error


def conclude(
    task: worker_pb2.Task, worker_id: str, attempt: Attempt, value: Any, error: BaseException | None
) -> worker_pb2.CompleteTaskRequest | None:
    """The report of how the attempt ended (``None``: the task is no longer ours, report nothing)."""
    token, step = task.task_token, attempt.ctx.step  # the workflow's step, not the function it runs
    if attempt.reason == "heartbeat_timeout":
        log.warning(
            "dropping the outcome of %s/%s: it did not heartbeat within its heartbeat timeout (%.1f s)",
            task.execution_id,
            step,
            task.lease_ms / 1000,
        )
        return None
    if attempt.reason == "lease_lost":
        log.info("dropping the outcome of %s/%s: its lease was lost", task.execution_id, step)
        return None
    if error is not None:
        if attempt.reason == "shutdown":
            shutdown = ApplicationError("the worker shut down before the step finished", type="WorkerShutdown")
            return failure_report(token, worker_id, shutdown)
        if attempt.reason is not None:  # it stopped because we asked it to
            return cancelled_report(token, worker_id, str(error) or "the step was cancelled")
        _log_failure(task, step, error)
        return failure_report(token, worker_id, error)
    return value_report(token, worker_id, value)


def _log_failure(task: worker_pb2.Task, step: str, error: BaseException) -> None:
    """Leave the traceback in the worker's log too: the report may be refused, or not shown."""
    final = isinstance(error, ApplicationError) and error.non_retryable
    log.log(
        logging.ERROR if final else logging.WARNING,
        "step %s of execution %s failed on attempt %d (%s): %s: %s",
        step,
        task.execution_id,
        task.attempt,
        "not retryable" if final else "retryable",
        type(error).__name__,
        error,
        exc_info=error,
    )


def _arguments(task: worker_pb2.Task) -> dict[str, Any]:
    try:
        arguments = json.loads(task.arguments_json) if task.arguments_json else {}
    except ValueError as exc:
        raise NonRetryableError(f"the task's arguments are not JSON: {exc}", type="InvalidArgument") from exc
    if not isinstance(arguments, dict):
        raise NonRetryableError("the task's arguments are not a JSON object", type="InvalidArgument")
    return arguments
