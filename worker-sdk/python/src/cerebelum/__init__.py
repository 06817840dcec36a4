"""Cerebelum worker SDK and clients.

Write steps and run them with :class:`Worker`; start and steer executions with
:class:`Client` (blocking) or :class:`AsyncClient` (asyncio). Workflows as code
(``@worker.workflow()``) get a :class:`WorkflowContext`; :func:`replay` checks a history against them.
"""

from cerebelum.async_client import AsyncClient
from cerebelum.client import Client
from cerebelum.connection import TlsSettings
from cerebelum.context import ExecutionOutcome, StepContext
from cerebelum.durations import Duration, parse_duration
from cerebelum.errors import (
    AbortedError,
    AlreadyExistsError,
    ApplicationError,
    CerebelumError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NonRetryableError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    ServerError,
    StepCancelled,
    UnauthenticatedError,
    UnavailableError,
)
from cerebelum.models import (
    TERMINAL_PHASES,
    BulkOutcome,
    ChildExecution,
    DeadLetter,
    Execution,
    ExecutionList,
    ExecutionPause,
    HistoryEvent,
    JumpLimit,
    PendingApproval,
    QueuedSignal,
    SignalWait,
    StepStatus,
    WorkflowInfo,
)
from cerebelum.operations import BulkResult
from cerebelum.outcomes import ApprovalRequest, RetryAfter, Sleep
from cerebelum.worker import Worker
from cerebelum.workflow import (
    ApprovalRejectedError,
    ApprovalTimedOutError,
    ChildFailedError,
    NonDeterminismError,
    ReplayResult,
    RetryPolicy,
    Signal,
    SignalTimedOutError,
    StepFailedError,
    StepOptions,
    WorkflowContext,
    WorkflowStepError,
    WorkflowTaskError,
    replay,
)

__all__ = [
    "TERMINAL_PHASES",
    "AbortedError",
    "AlreadyExistsError",
    "ApplicationError",
    "ApprovalRejectedError",
    "ApprovalRequest",
    "ApprovalTimedOutError",
    "AsyncClient",
    "BulkOutcome",
    "BulkResult",
    "CerebelumError",
    "ChildExecution",
    "ChildFailedError",
    "Client",
    "DeadLetter",
    "DeadlineExceededError",
    "Duration",
    "Execution",
    "ExecutionList",
    "ExecutionOutcome",
    "ExecutionPause",
    "FailedPreconditionError",
    "HistoryEvent",
    "InvalidArgumentError",
    "JumpLimit",
    "NonDeterminismError",
    "NonRetryableError",
    "NotFoundError",
    "PendingApproval",
    "PermissionDeniedError",
    "QueuedSignal",
    "ReplayResult",
    "ResourceExhaustedError",
    "RetryAfter",
    "RetryPolicy",
    "ServerError",
    "Signal",
    "SignalTimedOutError",
    "SignalWait",
    "Sleep",
    "StepCancelled",
    "StepContext",
    "StepFailedError",
    "StepOptions",
    "StepStatus",
    "TlsSettings",
    "UnauthenticatedError",
    "UnavailableError",
    "Worker",
    "WorkflowContext",
    "WorkflowInfo",
    "WorkflowStepError",
    "WorkflowTaskError",
    "parse_duration",
    "replay",
]
