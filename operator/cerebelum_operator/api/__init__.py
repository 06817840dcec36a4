"""The gRPC surface: WorkerService for workers, WorkflowService for clients."""

from .payloads import DEFAULT_MAX_PAYLOAD_BYTES
from .worker_service import WorkerServicer
from .workflow_service import WorkflowServicer, execution_info

__all__ = ["DEFAULT_MAX_PAYLOAD_BYTES", "WorkerServicer", "WorkflowServicer", "execution_info"]
