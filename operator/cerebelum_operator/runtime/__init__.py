"""The engine at run time: decisions persisted, tasks dispatched, timers fired. No transport here."""

from .clock import Clock, FakeClock, SystemClock
from .database import Database
from .dispatcher import Dispatcher, GrantedTask, HeartbeatResult
from .engine_service import EngineService, ExecutionConflict, ExecutionNotFound, Origin, WorkflowNotFound
from .flow_control import FlowControlService
from .following import every
from .outage import OutageLog
from .ownership import ShardHost
from .relay import Relay
from .retention import RetentionService
from .schedules import ScheduleInvalid, ScheduleNotFound, ScheduleService, ScheduleView
from .shard_balancer import ShardBalancer
from .task_queues import TaskQueueService, TaskQueueView
from .timers import TimerService
from .wakeup import Wakeup
from .workflow_key import WorkflowKey, namespace_of

__all__ = [
    "Clock",
    "Database",
    "Dispatcher",
    "EngineService",
    "ExecutionConflict",
    "ExecutionNotFound",
    "FakeClock",
    "FlowControlService",
    "GrantedTask",
    "HeartbeatResult",
    "Origin",
    "OutageLog",
    "Relay",
    "RetentionService",
    "ScheduleInvalid",
    "ScheduleNotFound",
    "ScheduleService",
    "ScheduleView",
    "ShardBalancer",
    "ShardHost",
    "SystemClock",
    "TaskQueueService",
    "TaskQueueView",
    "TimerService",
    "Wakeup",
    "WorkflowKey",
    "WorkflowNotFound",
    "every",
    "namespace_of",
]
