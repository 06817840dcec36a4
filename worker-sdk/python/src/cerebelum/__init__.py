"""Cerebelum worker SDK and clients.

Write steps and run them with :class:`Worker`; start and steer executions with
:class:`Client` (blocking) or :class:`AsyncClient` (asyncio).
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
    ChildExecution,
    DeadLetter,
    Execution,
    HistoryEvent,
    JumpLimit,
    PendingApproval,
    QueuedSignal,
    SignalWait,
    StepStatus,
    WorkflowInfo,
)
from cerebelum.outcomes import ApprovalRequest, RetryAfter, Sleep
from cerebelum.worker import Worker

__all__ = [
    "TERMINAL_PHASES",
    "AbortedError",
    "AlreadyExistsError",
    "ApplicationError",
    "ApprovalRequest",
    "AsyncClient",
    "CerebelumError",
    "ChildExecution",
    "Client",
    "DeadLetter",
    "DeadlineExceededError",
    "Duration",
    "Execution",
    "ExecutionOutcome",
    "FailedPreconditionError",
    "HistoryEvent",
    "InvalidArgumentError",
    "JumpLimit",
    "NonRetryableError",
    "NotFoundError",
    "PendingApproval",
    "PermissionDeniedError",
    "QueuedSignal",
    "ResourceExhaustedError",
    "RetryAfter",
    "ServerError",
    "SignalWait",
    "Sleep",
    "StepCancelled",
    "StepContext",
    "StepStatus",
    "TlsSettings",
    "UnauthenticatedError",
    "UnavailableError",
    "Worker",
    "WorkflowInfo",
    "parse_duration",
]
