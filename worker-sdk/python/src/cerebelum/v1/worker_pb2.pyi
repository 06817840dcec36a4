import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PollTaskRequest(_message.Message):
    __slots__ = ("worker_id", "task_queue", "steps", "wait_ms", "workflows", "stream_steps")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    STREAM_STEPS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    task_queue: str
    steps: _containers.RepeatedScalarFieldContainer[str]
    wait_ms: int
    workflows: _containers.RepeatedScalarFieldContainer[str]
    stream_steps: bool
    def __init__(self, worker_id: _Optional[str] = ..., task_queue: _Optional[str] = ..., steps: _Optional[_Iterable[str]] = ..., wait_ms: _Optional[int] = ..., workflows: _Optional[_Iterable[str]] = ..., stream_steps: bool = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_token", "execution_id", "workflow", "step", "attempt", "idempotency_key", "arguments_json", "attempt_deadline_ms", "lease_ms", "heartbeat_required", "poll", "last_progress_json", "attempt_deadline", "run", "workflow_step", "workflow_task")
    TASK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    POLL_FIELD_NUMBER: _ClassVar[int]
    LAST_PROGRESS_JSON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_STEP_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TASK_FIELD_NUMBER: _ClassVar[int]
    task_token: str
    execution_id: str
    workflow: str
    step: str
    attempt: int
    idempotency_key: str
    arguments_json: str
    attempt_deadline_ms: int
    lease_ms: int
    heartbeat_required: bool
    poll: int
    last_progress_json: str
    attempt_deadline: _timestamp_pb2.Timestamp
    run: int
    workflow_step: str
    workflow_task: WorkflowTask
    def __init__(self, task_token: _Optional[str] = ..., execution_id: _Optional[str] = ..., workflow: _Optional[str] = ..., step: _Optional[str] = ..., attempt: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., arguments_json: _Optional[str] = ..., attempt_deadline_ms: _Optional[int] = ..., lease_ms: _Optional[int] = ..., heartbeat_required: bool = ..., poll: _Optional[int] = ..., last_progress_json: _Optional[str] = ..., attempt_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run: _Optional[int] = ..., workflow_step: _Optional[str] = ..., workflow_task: _Optional[_Union[WorkflowTask, _Mapping]] = ...) -> None: ...

class WorkflowTask(_message.Message):
    __slots__ = ("function", "history_after_seq", "history_json", "started_seq")
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    HISTORY_AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    HISTORY_JSON_FIELD_NUMBER: _ClassVar[int]
    STARTED_SEQ_FIELD_NUMBER: _ClassVar[int]
    function: str
    history_after_seq: int
    history_json: str
    started_seq: int
    def __init__(self, function: _Optional[str] = ..., history_after_seq: _Optional[int] = ..., history_json: _Optional[str] = ..., started_seq: _Optional[int] = ...) -> None: ...

class GetWorkflowHistoryRequest(_message.Message):
    __slots__ = ("task_token", "worker_id", "after_seq", "limit")
    TASK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    task_token: str
    worker_id: str
    after_seq: int
    limit: int
    def __init__(self, task_token: _Optional[str] = ..., worker_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class GetWorkflowHistoryResponse(_message.Message):
    __slots__ = ("history_json",)
    HISTORY_JSON_FIELD_NUMBER: _ClassVar[int]
    history_json: str
    def __init__(self, history_json: _Optional[str] = ...) -> None: ...

class WorkflowCommands(_message.Message):
    __slots__ = ("commands_json",)
    COMMANDS_JSON_FIELD_NUMBER: _ClassVar[int]
    commands_json: str
    def __init__(self, commands_json: _Optional[str] = ...) -> None: ...

class PollTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("task_token", "worker_id", "progress_json")
    TASK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_JSON_FIELD_NUMBER: _ClassVar[int]
    task_token: str
    worker_id: str
    progress_json: str
    def __init__(self, task_token: _Optional[str] = ..., worker_id: _Optional[str] = ..., progress_json: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("cancel_requested", "lease_lost", "lease_expires_at_ms", "lease_expires_at")
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    LEASE_LOST_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    cancel_requested: bool
    lease_lost: bool
    lease_expires_at_ms: int
    lease_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, cancel_requested: bool = ..., lease_lost: bool = ..., lease_expires_at_ms: _Optional[int] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Success(_message.Message):
    __slots__ = ("output_json",)
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    output_json: str
    def __init__(self, output_json: _Optional[str] = ...) -> None: ...

class Failure(_message.Message):
    __slots__ = ("type", "message", "non_retryable", "stacktrace")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NON_RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    STACKTRACE_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    non_retryable: bool
    stacktrace: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., non_retryable: bool = ..., stacktrace: _Optional[str] = ...) -> None: ...

class RetryAfter(_message.Message):
    __slots__ = ("delay_ms",)
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    delay_ms: int
    def __init__(self, delay_ms: _Optional[int] = ...) -> None: ...

class Sleep(_message.Message):
    __slots__ = ("duration_ms", "output_json")
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    duration_ms: int
    output_json: str
    def __init__(self, duration_ms: _Optional[int] = ..., output_json: _Optional[str] = ...) -> None: ...

class ApprovalRequest(_message.Message):
    __slots__ = ("kind", "timeout_ms", "data_json")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    timeout_ms: int
    data_json: str
    def __init__(self, kind: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., data_json: _Optional[str] = ...) -> None: ...

class Cancelled(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class CompleteTaskRequest(_message.Message):
    __slots__ = ("task_token", "worker_id", "success", "failure", "retry_after", "sleep", "approval", "cancelled", "workflow_commands", "workflow_continuation", "poll_next")
    TASK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    SLEEP_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_COMMANDS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_CONTINUATION_FIELD_NUMBER: _ClassVar[int]
    POLL_NEXT_FIELD_NUMBER: _ClassVar[int]
    task_token: str
    worker_id: str
    success: Success
    failure: Failure
    retry_after: RetryAfter
    sleep: Sleep
    approval: ApprovalRequest
    cancelled: Cancelled
    workflow_commands: WorkflowCommands
    workflow_continuation: WorkflowContinuation
    poll_next: PollTaskRequest
    def __init__(self, task_token: _Optional[str] = ..., worker_id: _Optional[str] = ..., success: _Optional[_Union[Success, _Mapping]] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., retry_after: _Optional[_Union[RetryAfter, _Mapping]] = ..., sleep: _Optional[_Union[Sleep, _Mapping]] = ..., approval: _Optional[_Union[ApprovalRequest, _Mapping]] = ..., cancelled: _Optional[_Union[Cancelled, _Mapping]] = ..., workflow_commands: _Optional[_Union[WorkflowCommands, _Mapping]] = ..., workflow_continuation: _Optional[_Union[WorkflowContinuation, _Mapping]] = ..., poll_next: _Optional[_Union[PollTaskRequest, _Mapping]] = ...) -> None: ...

class WorkflowContinuation(_message.Message):
    __slots__ = ("after_seq", "time_ms", "commands_json")
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_JSON_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    time_ms: int
    commands_json: str
    def __init__(self, after_seq: _Optional[int] = ..., time_ms: _Optional[int] = ..., commands_json: _Optional[str] = ...) -> None: ...

class ContinuedWorkflowTask(_message.Message):
    __slots__ = ("started_seq", "history_json")
    STARTED_SEQ_FIELD_NUMBER: _ClassVar[int]
    HISTORY_JSON_FIELD_NUMBER: _ClassVar[int]
    started_seq: int
    history_json: str
    def __init__(self, started_seq: _Optional[int] = ..., history_json: _Optional[str] = ...) -> None: ...

class CompleteTaskResponse(_message.Message):
    __slots__ = ("disposition", "workflow_task", "next_task")
    class Disposition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DISPOSITION_UNSPECIFIED: _ClassVar[CompleteTaskResponse.Disposition]
        ACCEPTED: _ClassVar[CompleteTaskResponse.Disposition]
        DUPLICATE: _ClassVar[CompleteTaskResponse.Disposition]
        STALE: _ClassVar[CompleteTaskResponse.Disposition]
    DISPOSITION_UNSPECIFIED: CompleteTaskResponse.Disposition
    ACCEPTED: CompleteTaskResponse.Disposition
    DUPLICATE: CompleteTaskResponse.Disposition
    STALE: CompleteTaskResponse.Disposition
    DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TASK_FIELD_NUMBER: _ClassVar[int]
    NEXT_TASK_FIELD_NUMBER: _ClassVar[int]
    disposition: CompleteTaskResponse.Disposition
    workflow_task: ContinuedWorkflowTask
    next_task: Task
    def __init__(self, disposition: _Optional[_Union[CompleteTaskResponse.Disposition, str]] = ..., workflow_task: _Optional[_Union[ContinuedWorkflowTask, _Mapping]] = ..., next_task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class CompleteTasksRequest(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[CompleteTaskRequest]
    def __init__(self, reports: _Optional[_Iterable[_Union[CompleteTaskRequest, _Mapping]]] = ...) -> None: ...

class ReportError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class CompleteTaskResult(_message.Message):
    __slots__ = ("reply", "error")
    REPLY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    reply: CompleteTaskResponse
    error: ReportError
    def __init__(self, reply: _Optional[_Union[CompleteTaskResponse, _Mapping]] = ..., error: _Optional[_Union[ReportError, _Mapping]] = ...) -> None: ...

class CompleteTasksResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CompleteTaskResult]
    def __init__(self, results: _Optional[_Iterable[_Union[CompleteTaskResult, _Mapping]]] = ...) -> None: ...

class WorkCall(_message.Message):
    __slots__ = ("id", "timeout_ms", "poll_task", "complete_tasks", "cancel")
    ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    POLL_TASK_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TASKS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    id: int
    timeout_ms: int
    poll_task: PollTaskRequest
    complete_tasks: CompleteTasksRequest
    cancel: bool
    def __init__(self, id: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., poll_task: _Optional[_Union[PollTaskRequest, _Mapping]] = ..., complete_tasks: _Optional[_Union[CompleteTasksRequest, _Mapping]] = ..., cancel: bool = ...) -> None: ...

class WorkAnswer(_message.Message):
    __slots__ = ("id", "poll_task", "complete_tasks", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    POLL_TASK_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TASKS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: int
    poll_task: PollTaskResponse
    complete_tasks: CompleteTasksResponse
    error: ReportError
    def __init__(self, id: _Optional[int] = ..., poll_task: _Optional[_Union[PollTaskResponse, _Mapping]] = ..., complete_tasks: _Optional[_Union[CompleteTasksResponse, _Mapping]] = ..., error: _Optional[_Union[ReportError, _Mapping]] = ...) -> None: ...
