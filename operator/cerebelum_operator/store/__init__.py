"""The event store: SQLite (embedded default) and PostgreSQL, chosen by URL."""

from .base import (
    ConcurrencyConflict,
    DeadLetterRow,
    EventStore,
    ExecutionExists,
    ExecutionRow,
    ExecutionSummary,
    NewExecution,
    StoreError,
    TaskRow,
    TimerRow,
    WorkflowRow,
)

__all__ = [
    "ConcurrencyConflict",
    "DeadLetterRow",
    "EventStore",
    "ExecutionExists",
    "ExecutionRow",
    "ExecutionSummary",
    "NewExecution",
    "StoreError",
    "TaskRow",
    "TimerRow",
    "WorkflowRow",
]
