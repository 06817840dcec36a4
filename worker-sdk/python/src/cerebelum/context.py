"""``StepContext``: what a running step knows about its task, plus heartbeats, cancellation and outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeVar

from cerebelum.durations import Duration, duration_ms
from cerebelum.errors import CancelReason, NonRetryableError, StepCancelled
from cerebelum.jsoncodec import dumps, loads
from cerebelum.outcomes import ApprovalRequest, Outcome, RetryAfter, Sleep, helper_name
from cerebelum.times import instant
from cerebelum.v1 import worker_pb2

__all__ = ["ExecutionOutcome", "StepContext"]

_O = TypeVar("_O", RetryAfter, Sleep, ApprovalRequest)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionOutcome:
    """How the execution ended, given to its compensation and finally steps as ``ctx.outcome``.

    Those steps run only once the execution ends, and often must act on how: tell the customer
    the booking failed and why, or skip work when it succeeded. ``phase`` is ``"Failed"``,
    ``"Cancelled"`` or ``"Succeeded"``; ``reason`` why it failed or was cancelled; ``step`` the
    step that failed, when one did; ``output`` the output of an execution that succeeded (``None``
    when the task could not carry it beside the rest).
    """

    phase: str
    reason: str | None = None
    step: str | None = None
    output: Any = None


class StepContext:
    """Passed to a step that declares a parameter annotated ``StepContext`` (or named ``ctx``).

    Attributes describe the task: ``execution_id``, ``workflow``, ``step`` (the workflow's step),
    ``function`` (the registered function running it: the same name, unless the workflow step
    names another with ``function:``), ``attempt`` (1-based), ``run`` (1-based: which run of the
    step in the execution, +1 each time a loop or a redrive starts it over), ``idempotency_key``
    (``"<execution_id>/<step>/<run>"``, with ``"/<index>"`` after it for an item of a ``forEach``
    step: unique per run and item, the same for every retry of it), ``worker_id``, ``poll`` (how
    many ``retry_after`` polls of this attempt came before) and ``deadline`` (when the attempt
    must finish, or ``None``). :attr:`results` and :meth:`result` give the earlier steps' outputs
    by name, including names that cannot be parameters (``send-receipt``); :attr:`args` gives the
    arguments the workflow step passes its function, :attr:`vars` the workflow's variables,
    :attr:`item` and :attr:`index` the item a ``forEach`` step's task runs for, and
    :attr:`outcome` tells a compensation or finally step how the execution ended.
    """

    __slots__ = (
        "_args",
        "_cancel_event",
        "_cancel_reason",
        "_cancelled",
        "_index",
        "_item",
        "_last_progress",
        "_loop",
        "_loop_thread",
        "_notify",
        "_on_heartbeat",
        "_outcome",
        "_outcomes",
        "_progress_json",
        "_results",
        "_vars",
        "attempt",
        "deadline",
        "execution_id",
        "function",
        "idempotency_key",
        "poll",
        "run",
        "step",
        "worker_id",
        "workflow",
    )

    def __init__(self, task: worker_pb2.Task, worker_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.execution_id: str = task.execution_id
        self.workflow: str = task.workflow
        # `Task.step` is the function to run; the workflow's step is `workflow_step`, empty from an
        # engine that predates it (then they are the same).
        self.step: str = task.workflow_step or task.step
        self.function: str = task.step
        self.attempt: int = task.attempt
        self.run: int = task.run
        self.idempotency_key: str = task.idempotency_key
        self.worker_id: str = worker_id
        self.poll: int = task.poll
        self.deadline: datetime | None = instant(task, "attempt_deadline")
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._notify: Callable[[], None] | None = None
        self._on_heartbeat: Callable[[Any], None] | None = None  # the testing kit records calls here
        self._progress_json = ""
        self._last_progress: Any = loads(task.last_progress_json)
        self._cancelled = False
        self._cancel_reason: CancelReason | None = None
        self._cancel_event: asyncio.Event | None = None
        self._outcomes: list[Outcome] = []
        self._results: Mapping[str, Any] = MappingProxyType({})
        self._vars: Mapping[str, Any] = MappingProxyType({})
        self._args: Mapping[str, Any] = MappingProxyType({})
        self._item: Any = None
        self._index: int | None = None
        self._outcome: ExecutionOutcome | None = None

    def __repr__(self) -> str:
        return (
            f"StepContext(execution_id={self.execution_id!r}, step={self.step!r}, function={self.function!r}, "
            f"run={self.run}, attempt={self.attempt}, poll={self.poll})"
        )

    # -- earlier steps' outputs -------------------------------------------------------------

    @property
    def results(self) -> Mapping[str, Any]:
        """The outputs of the earlier steps, by step name (read-only)."""
        return self._results

    def result(self, name: str) -> Any:
        """The output of the earlier step ``name``, for names a parameter cannot have (``send-receipt``).

        Raises a non-retryable ``MissingArgument`` failure when that step has no output (a wrong
        name, or a step this one does not come after), as the TypeScript SDK's ``ctx.result``.
        """
        if name not in self._results:
            raise NonRetryableError(
                f"step {self.step!r} needs the result of step {name!r}, which has none "
                "(is the step name right, and does this step come after it?)",
                type="MissingArgument",
            )
        return self._results[name]

    def _set_results(self, results: Any) -> None:
        """Called by the worker with the task's ``results``, parsed once for the parameters and for this."""
        self._results = MappingProxyType(results if isinstance(results, dict) else {})

    # -- the workflow step's arguments ------------------------------------------------------

    @property
    def args(self) -> Mapping[str, Any]:
        """The arguments the workflow step passes its function (its ``args:``), by name (read-only).

        So one function serves many steps (``small`` and ``large`` both run ``resize``, each with
        its own ``width``). A parameter of the function named like an argument gets it too. Empty
        when the step has none (or the engine predates them).
        """
        return self._args

    def _set_args(self, arguments: Any) -> None:
        """Called by the worker with the task's ``args`` (absent, or not a JSON object: none)."""
        self._args = MappingProxyType(arguments if isinstance(arguments, dict) else {})

    # -- workflow variables -----------------------------------------------------------------

    @property
    def vars(self) -> Mapping[str, Any]:
        """The workflow's variables (its ``vars:``) as they were when this task was scheduled (read-only).

        Variables carry state across loops and steps (a counter, a cursor, the last error): the
        workflow assigns them with ``set``. A step cannot change them here: it returns a result,
        and the workflow's ``steps.<name>.set`` reads that result to assign them. Empty when the
        workflow declares no variables (or the engine predates them).
        """
        return self._vars

    def _set_vars(self, variables: Any) -> None:
        """Called by the worker with the task's ``vars`` (absent, or not a JSON object: none)."""
        self._vars = MappingProxyType(variables if isinstance(variables, dict) else {})

    # -- the item of a forEach step ---------------------------------------------------------

    @property
    def item(self) -> Any:
        """The item this task runs for, when its workflow step is a ``forEach`` step; else ``None``.

        A ``forEach`` step runs its function once per item of a list the workflow computes at run
        time (the orders of a batch, the pages to fetch), so the function handles one item and
        never sees the list. The item is the JSON value the list holds there. ``None`` for any
        other step (or from an engine that predates ``forEach``); an item that is itself ``null``
        is ``None`` too, and :attr:`index` tells the two apart.
        """
        return self._item

    @property
    def index(self) -> int | None:
        """The 0-based position of :attr:`item` in the list, or ``None`` when the step is not a ``forEach`` step.

        Items may run concurrently and finish in any order; the index tells which one this is (to
        label its output, or to read a sibling list). It is also the last part of
        :attr:`idempotency_key`, so the retries of one item share a key and no two items do.
        """
        return self._index

    def _set_item(self, item: Any, index: Any) -> None:
        """Called by the worker with the task's ``item`` and ``index``.

        Only a ``forEach`` step's task carries them; without an ``index`` that is a non-negative
        integer (absent, or not one) the task is not an item's, and both are ``None``.
        """
        if isinstance(index, int) and not isinstance(index, bool) and index >= 0:
            self._item, self._index = item, index
        else:
            self._item, self._index = None, None

    # -- how the execution ended ------------------------------------------------------------

    @property
    def outcome(self) -> ExecutionOutcome | None:
        """How the execution ended (:class:`ExecutionOutcome`), for a compensation or finally step.

        ``None`` for any other step: only those run once the execution ends.
        """
        return self._outcome

    def _set_outcome(self, outcome: Any) -> None:
        """Called by the worker with the task's ``outcome`` (absent, not an object, no string ``phase``: none)."""
        if not isinstance(outcome, dict) or not isinstance(outcome.get("phase"), str):
            self._outcome = None
            return
        reason, step = outcome.get("reason"), outcome.get("step")
        self._outcome = ExecutionOutcome(
            phase=outcome["phase"],
            reason=reason if isinstance(reason, str) else None,
            step=step if isinstance(step, str) else None,
            output=outcome.get("output"),
        )

    # -- heartbeats -------------------------------------------------------------------------

    def heartbeat(self, progress: Any = None) -> None:
        """Record ``progress`` (any JSON-able value) and ask for a heartbeat to be sent soon.

        Never blocks; safe to call from sync steps running in worker threads. When the task
        requires heartbeats, the lease is only extended while the step keeps calling this.
        Raises :class:`~cerebelum.StepCancelled` once the step must stop (see
        :attr:`cancel_reason`), so a sync step stops at its next heartbeat.
        """
        reason = self._cancel_reason
        if reason is not None:
            raise StepCancelled(reason)
        if self._on_heartbeat is not None:
            self._on_heartbeat(progress)
        if progress is not None:
            self._progress_json = dumps(progress)
        notify = self._notify
        if notify is None:
            return
        if threading.get_ident() == self._loop_thread:
            notify()
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: the worker is gone
            self._loop.call_soon_threadsafe(notify)

    @property
    def progress_json(self) -> str:
        """The last progress recorded by :meth:`heartbeat`, as JSON text (``""`` when none)."""
        return self._progress_json

    @property
    def last_progress(self) -> Any:
        """The progress the step's previous attempt last sent before it failed or its lease expired.

        ``None`` on a first attempt or when no earlier attempt sent any: a retried step can resume
        where the failed one stopped, as with Temporal's heartbeat details.
        """
        return self._last_progress

    # -- cancellation -----------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once the step must stop: the server asked, its lease is gone, or the worker is stopping."""
        return self._cancelled

    @property
    def cancel_reason(self) -> CancelReason | None:
        """Why the step must stop (``"cancel_requested"``, ``"heartbeat_timeout"``,
        ``"lease_lost"``, ``"shutdown"``), or ``None`` while it may go on."""
        return self._cancel_reason

    async def wait_cancelled(self) -> None:
        """Return once :attr:`cancelled` becomes true."""
        if self._cancelled:
            return
        if self._cancel_event is None:
            self._cancel_event = asyncio.Event()
        await self._cancel_event.wait()

    def _mark_cancelled(self, reason: CancelReason) -> None:
        """Called on the event loop's thread. A lost lease outranks an earlier reason."""
        if self._cancel_reason is None or reason in ("lease_lost", "heartbeat_timeout"):
            self._cancel_reason = reason
        self._cancelled = True
        if self._cancel_event is not None:
            self._cancel_event.set()

    # -- outcomes ---------------------------------------------------------------------------
    # An outcome only takes effect when the step returns it. The context remembers the outcomes
    # it built so that one built and not returned (``ctx.sleep(...)`` without ``return``) fails
    # the step loudly instead of being ignored.

    def retry_after(self, seconds: Duration) -> RetryAfter:
        """Return this from the step to run it again after ``seconds`` (not counted as a failure)."""
        return self._built(RetryAfter(delay_ms=duration_ms(seconds)))

    def sleep(self, duration: Duration, result: Any = None) -> Sleep:
        """Return this from the step: it succeeded with ``result``, then the execution sleeps ``duration``."""
        return self._built(Sleep(duration_ms=duration_ms(duration), result=result))

    def request_approval(
        self, *, kind: str = "approval", timeout: Duration | None = None, data: Any = None
    ) -> ApprovalRequest:
        """Return this from the step to wait for a human to approve or reject it.

        ``timeout`` of ``None`` waits forever; ``data`` is shown to the approver.
        """
        timeout_ms = 0 if timeout is None else duration_ms(timeout)
        return self._built(ApprovalRequest(kind=kind, timeout_ms=timeout_ms, data=data))

    def _built(self, outcome: _O) -> _O:
        self._outcomes.append(outcome)
        return outcome

    def _check_returned(self, value: Any) -> None:
        """Raise when the step built an outcome but returned something else."""
        if not self._outcomes or any(value is outcome for outcome in self._outcomes):
            return
        helper = helper_name(self._outcomes[-1])
        raise NonRetryableError(
            f"step {self.step!r} called {helper} but returned {type(value).__name__} instead of the outcome: "
            f"write `return {helper}` (an outcome only takes effect when the step returns it)",
            type="OutcomeNotReturned",
        )
