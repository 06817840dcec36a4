"""The engine at run time: decisions persisted, tasks dispatched, timers fired. No transport here."""

from .clock import Clock, FakeClock, SystemClock
from .database import Database
from .dispatcher import Dispatcher, GrantedTask, HeartbeatResult, namespace_of
from .engine_service import EngineService, ExecutionConflict, ExecutionNotFound, WorkflowNotFound
from .timers import TimerService

__all__ = [
    "Clock",
    "Database",
    "Dispatcher",
    "EngineService",
    "ExecutionConflict",
    "ExecutionNotFound",
    "FakeClock",
    "GrantedTask",
    "HeartbeatResult",
    "SystemClock",
    "TimerService",
    "WorkflowNotFound",
    "namespace_of",
]
