"""``StepContext``: what a running step knows about its task, plus heartbeats, cancellation and outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cerebelum.durations import Duration, duration_ms
from cerebelum.jsoncodec import dumps
from cerebelum.outcomes import ApprovalRequest, RetryAfter, Sleep
from cerebelum.v1 import worker_pb2

__all__ = ["StepContext"]


class StepContext:
    """Passed to a step that declares a parameter annotated ``StepContext`` (or named ``ctx``).

    Attributes describe the task: ``execution_id``, ``workflow``, ``step``, ``attempt`` (1-based),
    ``idempotency_key`` (stable for one attempt), ``worker_id``, ``poll`` (how many ``retry_after``
    polls of this attempt came before) and ``deadline`` (when the attempt must finish, or ``None``).
    """

    __slots__ = (
        "_cancel_event",
        "_cancelled",
        "_loop",
        "_loop_thread",
        "_notify",
        "_progress_json",
        "attempt",
        "deadline",
        "execution_id",
        "idempotency_key",
        "poll",
        "step",
        "worker_id",
        "workflow",
    )

    def __init__(self, task: worker_pb2.Task, worker_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.execution_id: str = task.execution_id
        self.workflow: str = task.workflow
        self.step: str = task.step
        self.attempt: int = task.attempt
        self.idempotency_key: str = task.idempotency_key
        self.worker_id: str = worker_id
        self.poll: int = task.poll
        ms = task.attempt_deadline_ms
        self.deadline: datetime | None = datetime.fromtimestamp(ms / 1000, UTC) if ms > 0 else None
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._notify: Callable[[], None] | None = None
        self._progress_json = ""
        self._cancelled = False
        self._cancel_event: asyncio.Event | None = None

    def __repr__(self) -> str:
        return (
            f"StepContext(execution_id={self.execution_id!r}, step={self.step!r}, "
            f"attempt={self.attempt}, poll={self.poll})"
        )

    # -- heartbeats -------------------------------------------------------------------------

    def heartbeat(self, progress: Any = None) -> None:
        """Record ``progress`` (any JSON-able value) and ask for a heartbeat to be sent soon.

        Never blocks; safe to call from sync steps running in worker threads. When the task
        requires heartbeats, the lease is only extended while the step keeps calling this.
        """
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

    # -- cancellation -----------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once the server asked to stop the step (or its lease was lost, or the worker is stopping)."""
        return self._cancelled

    async def wait_cancelled(self) -> None:
        """Return once :attr:`cancelled` becomes true."""
        if self._cancelled:
            return
        if self._cancel_event is None:
            self._cancel_event = asyncio.Event()
        await self._cancel_event.wait()

    def _mark_cancelled(self) -> None:
        self._cancelled = True
        if self._cancel_event is not None:
            self._cancel_event.set()

    # -- outcomes ---------------------------------------------------------------------------

    @staticmethod
    def retry_after(seconds: Duration) -> RetryAfter:
        """Return this from the step to run it again after ``seconds`` (not counted as a failure)."""
        return RetryAfter(delay_ms=duration_ms(seconds))

    @staticmethod
    def sleep(duration: Duration, result: Any = None) -> Sleep:
        """Return this from the step: it succeeded with ``result``, then the execution sleeps ``duration``."""
        return Sleep(duration_ms=duration_ms(duration), result=result)

    @staticmethod
    def request_approval(
        *, kind: str = "approval", timeout: Duration | None = None, data: Any = None
    ) -> ApprovalRequest:
        """Return this from the step to wait for a human to approve or reject it.

        ``timeout`` of ``None`` waits forever; ``data`` is shown to the approver.
        """
        return ApprovalRequest(kind=kind, timeout_ms=0 if timeout is None else duration_ms(timeout), data=data)
