"""The event store: SQLite (embedded default) and PostgreSQL, chosen by URL."""

from .base import (
    AppendRequest,
    ConcurrencyConflict,
    DeadLetterRow,
    EventStore,
    ExecutionExists,
    ExecutionRow,
    ExecutionSummary,
    MessageRow,
    NewExecution,
    StoreCorrupted,
    StoreError,
    StoreLocked,
    StoreUnavailable,
    TaskRow,
    TimerRow,
    WorkflowRow,
)
from .open import open_store

__all__ = [
    "AppendRequest",
    "ConcurrencyConflict",
    "DeadLetterRow",
    "EventStore",
    "ExecutionExists",
    "ExecutionRow",
    "ExecutionSummary",
    "MessageRow",
    "NewExecution",
    "StoreCorrupted",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "TaskRow",
    "TimerRow",
    "WorkflowRow",
    "open_store",
]
