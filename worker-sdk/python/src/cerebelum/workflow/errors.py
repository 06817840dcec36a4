"""Errors workflow code sees (a waiting command failed for good) and errors of the SDK's workflow side."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApprovalRejectedError",
    "ApprovalTimedOutError",
    "ChildFailedError",
    "ContinueAsNew",
    "NonDeterminismError",
    "SignalTimedOutError",
    "StepFailedError",
    "WorkflowStepError",
    "WorkflowTaskError",
]


class WorkflowStepError(Exception):
    """A command the workflow awaited failed for good (the engine's retries, if any, are spent).

    ``error_type`` and ``message`` are the engine's (``StepFailed``); ``step`` is the name the engine
    gave the command (``charge#3``). Catch it to compensate; let it propagate to fail the workflow.
    """

    def __init__(self, error_type: str, message: str, *, step: str) -> None:
        super().__init__(f"{step}: {error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.step = step


class StepFailedError(WorkflowStepError):
    """A step (``wf.step``) failed for good."""


class ApprovalRejectedError(WorkflowStepError):
    """Someone rejected the approval ``wf.wait_for_approval`` waited for."""


class ApprovalTimedOutError(WorkflowStepError):
    """Nobody approved before the approval's timeout."""


class SignalTimedOutError(WorkflowStepError):
    """No signal came before ``wf.wait_for_signal``'s timeout."""


class ChildFailedError(WorkflowStepError):
    """The child execution of ``wf.child`` failed or was cancelled."""


class NonDeterminismError(Exception):
    """Replaying the history issued other commands than the history recorded.

    The code changed in a way that is incompatible with running executions (use ``wf.patched``),
    or it is not deterministic. ``event_seq``/``event_type`` name the event whose commands differ,
    ``issued`` and ``recorded`` the first differing command of each side (``None``: missing there).
    """

    def __init__(
        self,
        message: str,
        *,
        event_seq: int,
        event_type: str,
        issued: dict[str, Any] | None,
        recorded: dict[str, Any] | None,
    ) -> None:
        super().__init__(message)
        self.event_seq = event_seq
        self.event_type = event_type
        self.issued = issued
        self.recorded = recorded


class WorkflowTaskError(Exception):
    """The SDK could not run a workflow task: the code broke a determinism rule, or the history is unusable.

    The worker answers the task with a ``WorkflowTaskError`` failure, so the engine retries it later
    (on fixed code) instead of failing the execution.
    """


class ContinueAsNew(BaseException):
    """Raised by ``wf.continue_as_new``: ends this run and starts the next with ``input``.

    A ``BaseException`` so that ``except Exception`` in workflow code does not swallow it.
    """

    def __init__(self, input: Any) -> None:
        super().__init__("continue as new")
        self.input = input
