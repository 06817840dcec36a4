"""Workflows as code: deterministic replay of a workflow function against the engine's history.

Workflow code runs on its own deterministic event loop (:mod:`cerebelum.workflow.loop`); it never
imports step execution.
"""

from cerebelum.workflow.context import Signal, WorkflowContext
from cerebelum.workflow.errors import (
    ApprovalRejectedError,
    ApprovalTimedOutError,
    ChildFailedError,
    ContinueAsNew,
    NonDeterminismError,
    SignalTimedOutError,
    StepFailedError,
    WorkflowStepError,
    WorkflowTaskError,
)
from cerebelum.workflow.options import RetryPolicy, StepOptions
from cerebelum.workflow.replay import ReplayResult, replay

__all__ = [
    "ApprovalRejectedError",
    "ApprovalTimedOutError",
    "ChildFailedError",
    "ContinueAsNew",
    "NonDeterminismError",
    "ReplayResult",
    "RetryPolicy",
    "Signal",
    "SignalTimedOutError",
    "StepFailedError",
    "StepOptions",
    "WorkflowContext",
    "WorkflowStepError",
    "WorkflowTaskError",
    "replay",
]
