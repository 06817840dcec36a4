"""Unit-test steps without an engine: run a step function with a fake context, inspect its outcome.

::

    from cerebelum.testing import StepEnvironment

    result = StepEnvironment(input={"id": "o-1", "amount": 42}).run(charge)
    assert result.output == {"order": "o-1", "charged": 42}

The step runs through the worker's own code: its parameters are filled and validated as the
worker fills them, its result goes through the same JSON encoding, and an exception or an
outcome (``ctx.sleep(...)``, ``ctx.retry_after(...)``, ``ctx.request_approval(...)``) becomes what the
engine would receive. Only the engine is missing: heartbeats are recorded, and cancellation
happens when the test calls :meth:`StepEnvironment.cancel`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from google.protobuf.timestamp_pb2 import Timestamp

from cerebelum.context import ExecutionOutcome, StepContext
from cerebelum.errors import CancelReason
from cerebelum.execution import Attempt, conclude, run_attempt
from cerebelum.jsoncodec import dumps
from cerebelum.outcomes import ApprovalRequest, RetryAfter, Sleep
from cerebelum.steps import StepDefinition
from cerebelum.v1 import worker_pb2

__all__ = ["Failure", "ResultKind", "StepEnvironment", "StepResult"]

ResultKind = Literal["success", "sleep", "retry_after", "approval", "failure", "cancelled", "dropped"]


@dataclass(frozen=True, kw_only=True)
class Failure:
    """A failed attempt as the engine receives it."""

    type: str
    message: str
    non_retryable: bool
    stacktrace: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class StepResult:
    """How one run of a step ended.

    ``kind`` is one of ``success``, ``sleep``, ``retry_after``, ``approval``, ``failure``,
    ``cancelled`` (it stopped after :meth:`StepEnvironment.cancel`) or ``dropped`` (cancelled with
    reason ``lease_lost`` or ``heartbeat_timeout``: a worker reports nothing). ``output`` is the
    success's output, or the ``sleep`` result, after the JSON round trip the engine makes (a
    pydantic model comes back as a dict). ``exception`` is what the step raised, if anything.
    """

    kind: ResultKind
    output: Any = None
    sleep: Sleep | None = None
    retry_after: RetryAfter | None = None
    approval: ApprovalRequest | None = None
    failure: Failure | None = None
    cancelled: str | None = None
    exception: BaseException | None = field(default=None, repr=False)


@dataclass
class _Running:
    loop: asyncio.AbstractEventLoop
    thread: int
    attempt: Attempt


class StepEnvironment:
    """Runs step functions (async or sync) with a fake :class:`~cerebelum.StepContext`.

    ``input`` is the workflow input, ``results`` the outputs of earlier steps, by step name,
    ``args`` the arguments the workflow step passes the function (``ctx.args``, and the
    parameters of those names), ``vars`` the workflow's variables (``ctx.vars``), and ``outcome``
    how the execution ended, for a compensation or finally step (``ctx.outcome``), as a worker
    receives them; ``item`` and ``index`` make the task an item's of a ``forEach`` step
    (``ctx.item``, and ``ctx.index``, 0-based, which then ends ``ctx.idempotency_key``): giving
    either gives both, ``index`` 0 and ``item`` ``None`` unless given. ``run`` is the step's run
    in the execution (``ctx.run``, in ``ctx.idempotency_key``); ``last_progress`` is what the
    previous attempt last sent with ``ctx.heartbeat(...)`` (``ctx.last_progress``). ``step`` is
    the name the function is registered under (``ctx.function``), by default the function's name;
    ``workflow_step`` the workflow's step it runs for (``ctx.step``), by default ``step``: with
    ``args``, one function can be tested as each of the steps it serves. ``on_heartbeat`` is
    called with the progress of every ``ctx.heartbeat(...)``, in the step's thread (it may call
    :meth:`cancel`); :attr:`heartbeats` lists that progress too. One environment may run many
    steps, one at a time.
    """

    def __init__(
        self,
        *,
        input: Any = None,
        results: dict[str, Any] | None = None,
        vars: dict[str, Any] | None = None,
        outcome: ExecutionOutcome | None = None,
        args: dict[str, Any] | None = None,
        item: Any = None,
        index: int | None = None,
        step: str | None = None,
        workflow_step: str | None = None,
        execution_id: str = "test-execution",
        workflow: str = "test-workflow",
        attempt: int = 1,
        run: int = 1,
        poll: int = 0,
        worker_id: str = "test-worker",
        deadline: datetime | None = None,
        last_progress: Any = None,
        on_heartbeat: Callable[[Any], None] | None = None,
    ) -> None:
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        if run < 1:
            raise ValueError("run is 1-based")
        if index is not None and index < 0:
            raise ValueError("index is 0-based")
        self.input = input
        self.results = dict(results or {})
        self.vars = dict(vars or {})
        self.outcome = outcome
        self.args = dict(args or {})
        self.item = item
        # The task is an item's when either is given (an item of `null` needs its index).
        self.index = index if index is not None or item is None else 0
        self.step = step
        self.workflow_step = workflow_step
        self.execution_id = execution_id
        self.workflow = workflow
        self.attempt = attempt
        self.run_number = run  # `run` is the method that runs a step
        self.poll = poll
        self.worker_id = worker_id
        self.deadline = deadline
        self.last_progress = last_progress
        self.on_heartbeat = on_heartbeat
        self.heartbeats: list[Any] = []
        self._pending: CancelReason | None = None
        self._running: _Running | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StepEnvironment(execution_id={self.execution_id!r}, attempt={self.attempt})"

    def cancel(self, reason: CancelReason = "cancel_requested") -> None:
        """Tell the step to stop, as the engine would; before :meth:`run`, the step starts cancelled.

        Async steps get ``CancelledError`` at their current ``await``; sync steps see
        ``ctx.cancelled`` and get :class:`~cerebelum.StepCancelled` from their next
        ``ctx.heartbeat()``. Callable from any thread.
        """
        with self._lock:
            running = self._running
            if running is None:
                self._pending = reason
                return
        if threading.get_ident() == running.thread:
            running.attempt.cancel(reason)
            return
        ctx = running.attempt.ctx
        if ctx._cancel_reason is None:  # seen by the step's thread at once, not at the loop's next turn
            ctx._cancel_reason = reason
            ctx._cancelled = True
        running.loop.call_soon_threadsafe(running.attempt.cancel, reason)

    def run(self, fn: Callable[..., Any], /) -> StepResult:
        """Run ``fn`` to its end in a new event loop; from async tests use :meth:`run_async`."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run_async(fn))
        raise RuntimeError("StepEnvironment.run() was called inside an event loop: use `await env.run_async(fn)`")

    async def run_async(self, fn: Callable[..., Any], /) -> StepResult:
        """Run ``fn`` to its end (a sync ``fn`` in a thread, as a worker runs it)."""
        name: str = self.step or getattr(fn, "__name__", None) or "step"
        definition = StepDefinition(name, fn)
        task = self._task(definition.name)
        loop = asyncio.get_running_loop()
        ctx = StepContext(task, self.worker_id, loop)
        ctx._on_heartbeat = self._heartbeat
        runner = loop.create_task(self._attempt(definition, task, ctx))
        return await runner

    async def _attempt(self, definition: StepDefinition, task: worker_pb2.Task, ctx: StepContext) -> StepResult:
        current = asyncio.current_task()
        assert current is not None
        attempt = Attempt(ctx, current, definition.is_async)
        with self._lock:
            if self._running is not None:
                raise RuntimeError("this StepEnvironment is already running a step")
            self._running = _Running(asyncio.get_running_loop(), threading.get_ident(), attempt)
            pending, self._pending = self._pending, None
        if pending is not None:
            attempt.cancel(pending)
        try:
            value, error = await run_attempt(definition, task, attempt, None)
        finally:
            with self._lock:
                self._running = None
        return _result(conclude(task, self.worker_id, attempt, value, error), error)

    def _heartbeat(self, progress: Any) -> None:
        self.heartbeats.append(progress)
        if self.on_heartbeat is not None:
            self.on_heartbeat(progress)

    def _task(self, function: str) -> worker_pb2.Task:
        deadline_ms = 0 if self.deadline is None else round(self.deadline.timestamp() * 1000)
        step = self.workflow_step or function  # the engine's keys are the workflow step's
        key = f"{self.execution_id}/{step}/{self.run_number}"
        if self.index is not None:  # as the engine builds an item's key
            key = f"{key}/{self.index}"
        return worker_pb2.Task(
            task_token=f"test-{self.execution_id}-{step}-{self.attempt}-{self.poll}",
            execution_id=self.execution_id,
            workflow=self.workflow,
            step=function,
            workflow_step=step,
            attempt=self.attempt,
            idempotency_key=key,
            run=self.run_number,
            arguments_json=dumps(self._arguments()),
            attempt_deadline_ms=deadline_ms,
            attempt_deadline=None if self.deadline is None else _timestamp(self.deadline),
            poll=self.poll,
            last_progress_json="" if self.last_progress is None else dumps(self.last_progress),
        )

    def _arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"input": self.input, "results": self.results, "vars": self.vars}
        if self.args:  # as from the engine: only a step with args has the key
            arguments["args"] = self.args
        if self.index is not None:  # only a forEach step's task has the keys
            arguments["item"] = self.item
            arguments["index"] = self.index
        if self.outcome is not None:  # only a compensation or finally step's task has the key
            outcome = self.outcome
            arguments["outcome"] = {
                "phase": outcome.phase,
                "reason": outcome.reason,
                "step": outcome.step,
                "output": outcome.output,
            }
        return arguments


def _loads(text: str) -> Any:
    return json.loads(text) if text else None


def _result(report: worker_pb2.CompleteTaskRequest | None, error: BaseException | None) -> StepResult:
    if report is None:
        return StepResult(kind="dropped", exception=error)
    outcome = report.WhichOneof("outcome")
    if outcome == "success":
        return StepResult(kind="success", output=_loads(report.success.output_json))
    if outcome == "sleep":
        result = _loads(report.sleep.output_json)
        return StepResult(kind="sleep", output=result, sleep=Sleep(duration_ms=report.sleep.duration_ms, result=result))
    if outcome == "retry_after":
        return StepResult(kind="retry_after", retry_after=RetryAfter(delay_ms=report.retry_after.delay_ms))
    if outcome == "approval":
        approval = report.approval
        return StepResult(
            kind="approval",
            approval=ApprovalRequest(
                kind=approval.kind, timeout_ms=approval.timeout_ms, data=_loads(approval.data_json)
            ),
        )
    if outcome == "cancelled":
        return StepResult(kind="cancelled", cancelled=report.cancelled.message, exception=error)
    failure = report.failure
    return StepResult(
        kind="failure",
        failure=Failure(
            type=failure.type,
            message=failure.message,
            non_retryable=failure.non_retryable,
            stacktrace=failure.stacktrace,
        ),
        exception=error,
    )


def _timestamp(when: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp
