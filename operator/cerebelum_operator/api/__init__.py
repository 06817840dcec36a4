"""The gRPC surface: WorkerService for workers, WorkflowService, ScheduleService and TaskQueueService for clients."""

from .access import AccessPolicy, AccessRule, PolicyError
from .auth import (
    Authenticator,
    AuthUnavailable,
    Identity,
    StaticTokenAuthenticator,
    TokenFileAuthenticator,
    Unauthenticated,
)
from .guard import Guard
from .payloads import DEFAULT_MAX_PAYLOAD_BYTES
from .schedule_service import ScheduleServicer
from .task_queue_service import TaskQueueServicer
from .worker_service import WorkerServicer
from .workflow_service import WorkflowServicer, execution_info

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "AccessPolicy",
    "AccessRule",
    "AuthUnavailable",
    "Authenticator",
    "Guard",
    "Identity",
    "PolicyError",
    "ScheduleServicer",
    "StaticTokenAuthenticator",
    "TaskQueueServicer",
    "TokenFileAuthenticator",
    "Unauthenticated",
    "WorkerServicer",
    "WorkflowServicer",
    "execution_info",
]
