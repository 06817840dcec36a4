import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApplyWorkflowRequest(_message.Message):
    __slots__ = ("name", "spec_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    spec_json: str
    def __init__(self, name: _Optional[str] = ..., spec_json: _Optional[str] = ...) -> None: ...

class WorkflowInfo(_message.Message):
    __slots__ = ("name", "spec_json", "version", "updated_at_ms", "updated_at", "pause")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    name: str
    spec_json: str
    version: int
    updated_at_ms: int
    updated_at: _timestamp_pb2.Timestamp
    pause: ExecutionPause
    def __init__(self, name: _Optional[str] = ..., spec_json: _Optional[str] = ..., version: _Optional[int] = ..., updated_at_ms: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pause: _Optional[_Union[ExecutionPause, _Mapping]] = ...) -> None: ...

class PauseWorkflowRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ResumeWorkflowRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetWorkflowRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWorkflowsResponse(_message.Message):
    __slots__ = ("workflows",)
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[WorkflowInfo]
    def __init__(self, workflows: _Optional[_Iterable[_Union[WorkflowInfo, _Mapping]]] = ...) -> None: ...

class StartExecutionRequest(_message.Message):
    __slots__ = ("workflow", "input_json", "execution_id", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    workflow: str
    input_json: str
    execution_id: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, workflow: _Optional[str] = ..., input_json: _Optional[str] = ..., execution_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class StepInfo(_message.Message):
    __slots__ = ("name", "phase", "attempts", "started_at_ms", "finished_at_ms", "last_error", "last_stacktrace", "progress_json", "waiting_hint", "started_at", "finished_at", "items")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_STACKTRACE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_JSON_FIELD_NUMBER: _ClassVar[int]
    WAITING_HINT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    phase: str
    attempts: int
    started_at_ms: int
    finished_at_ms: int
    last_error: str
    last_stacktrace: str
    progress_json: str
    waiting_hint: str
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    items: ItemsProgress
    def __init__(self, name: _Optional[str] = ..., phase: _Optional[str] = ..., attempts: _Optional[int] = ..., started_at_ms: _Optional[int] = ..., finished_at_ms: _Optional[int] = ..., last_error: _Optional[str] = ..., last_stacktrace: _Optional[str] = ..., progress_json: _Optional[str] = ..., waiting_hint: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., items: _Optional[_Union[ItemsProgress, _Mapping]] = ...) -> None: ...

class ItemsProgress(_message.Message):
    __slots__ = ("total", "done", "failed", "in_flight")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    total: int
    done: int
    failed: int
    in_flight: int
    def __init__(self, total: _Optional[int] = ..., done: _Optional[int] = ..., failed: _Optional[int] = ..., in_flight: _Optional[int] = ...) -> None: ...

class PendingApproval(_message.Message):
    __slots__ = ("step", "kind", "data_json", "timeout_at_ms", "timeout_at")
    STEP_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_AT_FIELD_NUMBER: _ClassVar[int]
    step: str
    kind: str
    data_json: str
    timeout_at_ms: int
    timeout_at: _timestamp_pb2.Timestamp
    def __init__(self, step: _Optional[str] = ..., kind: _Optional[str] = ..., data_json: _Optional[str] = ..., timeout_at_ms: _Optional[int] = ..., timeout_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JumpLimit(_message.Message):
    __slots__ = ("rule", "step", "target", "bound", "times")
    RULE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    BOUND_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    rule: str
    step: str
    target: str
    bound: int
    times: int
    def __init__(self, rule: _Optional[str] = ..., step: _Optional[str] = ..., target: _Optional[str] = ..., bound: _Optional[int] = ..., times: _Optional[int] = ...) -> None: ...

class ExecutionInfo(_message.Message):
    __slots__ = ("id", "workflow", "phase", "current_steps", "input_json", "output_json", "error", "created_at_ms", "updated_at_ms", "wake_at_ms", "event_count", "steps", "pending_approvals", "created_at", "updated_at", "wake_at", "jump_limits", "deadline", "vars_json", "ending", "queued_signals", "signal_waits", "parent_id", "parent_step", "children", "continued_from", "continued_as", "first_run_id", "run", "workflow_task_error", "reset_from", "pauses", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STEPS_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    WAKE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    PENDING_APPROVALS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    WAKE_AT_FIELD_NUMBER: _ClassVar[int]
    JUMP_LIMITS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    VARS_JSON_FIELD_NUMBER: _ClassVar[int]
    ENDING_FIELD_NUMBER: _ClassVar[int]
    QUEUED_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_WAITS_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_STEP_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    CONTINUED_FROM_FIELD_NUMBER: _ClassVar[int]
    CONTINUED_AS_FIELD_NUMBER: _ClassVar[int]
    FIRST_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TASK_ERROR_FIELD_NUMBER: _ClassVar[int]
    RESET_FROM_FIELD_NUMBER: _ClassVar[int]
    PAUSES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    id: str
    workflow: str
    phase: str
    current_steps: _containers.RepeatedScalarFieldContainer[str]
    input_json: str
    output_json: str
    error: str
    created_at_ms: int
    updated_at_ms: int
    wake_at_ms: int
    event_count: int
    steps: _containers.RepeatedCompositeFieldContainer[StepInfo]
    pending_approvals: _containers.RepeatedCompositeFieldContainer[PendingApproval]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    wake_at: _timestamp_pb2.Timestamp
    jump_limits: _containers.RepeatedCompositeFieldContainer[JumpLimit]
    deadline: _timestamp_pb2.Timestamp
    vars_json: str
    ending: str
    queued_signals: _containers.RepeatedCompositeFieldContainer[QueuedSignal]
    signal_waits: _containers.RepeatedCompositeFieldContainer[SignalWait]
    parent_id: str
    parent_step: str
    children: _containers.RepeatedCompositeFieldContainer[ChildExecution]
    continued_from: str
    continued_as: str
    first_run_id: str
    run: int
    workflow_task_error: str
    reset_from: str
    pauses: _containers.RepeatedCompositeFieldContainer[ExecutionPause]
    labels: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., workflow: _Optional[str] = ..., phase: _Optional[str] = ..., current_steps: _Optional[_Iterable[str]] = ..., input_json: _Optional[str] = ..., output_json: _Optional[str] = ..., error: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., updated_at_ms: _Optional[int] = ..., wake_at_ms: _Optional[int] = ..., event_count: _Optional[int] = ..., steps: _Optional[_Iterable[_Union[StepInfo, _Mapping]]] = ..., pending_approvals: _Optional[_Iterable[_Union[PendingApproval, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., wake_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., jump_limits: _Optional[_Iterable[_Union[JumpLimit, _Mapping]]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., vars_json: _Optional[str] = ..., ending: _Optional[str] = ..., queued_signals: _Optional[_Iterable[_Union[QueuedSignal, _Mapping]]] = ..., signal_waits: _Optional[_Iterable[_Union[SignalWait, _Mapping]]] = ..., parent_id: _Optional[str] = ..., parent_step: _Optional[str] = ..., children: _Optional[_Iterable[_Union[ChildExecution, _Mapping]]] = ..., continued_from: _Optional[str] = ..., continued_as: _Optional[str] = ..., first_run_id: _Optional[str] = ..., run: _Optional[int] = ..., workflow_task_error: _Optional[str] = ..., reset_from: _Optional[str] = ..., pauses: _Optional[_Iterable[_Union[ExecutionPause, _Mapping]]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ExecutionPause(_message.Message):
    __slots__ = ("source", "reason", "by", "at")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    source: str
    reason: str
    by: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, source: _Optional[str] = ..., reason: _Optional[str] = ..., by: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PauseExecutionRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ResumeExecutionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ResetExecutionRequest(_message.Message):
    __slots__ = ("id", "step", "new_id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    NEW_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    step: str
    new_id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., step: _Optional[str] = ..., new_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class BulkExecutionsRequest(_message.Message):
    __slots__ = ("action", "ids", "workflow", "phase", "all", "limit", "reason", "dry_run")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    action: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    workflow: str
    phase: str
    all: bool
    limit: int
    reason: str
    dry_run: bool
    def __init__(self, action: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., workflow: _Optional[str] = ..., phase: _Optional[str] = ..., all: bool = ..., limit: _Optional[int] = ..., reason: _Optional[str] = ..., dry_run: bool = ...) -> None: ...

class BulkOutcome(_message.Message):
    __slots__ = ("id", "result", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    result: str
    error: str
    def __init__(self, id: _Optional[str] = ..., result: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class BulkExecutionsResponse(_message.Message):
    __slots__ = ("outcomes", "truncated")
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[BulkOutcome]
    truncated: bool
    def __init__(self, outcomes: _Optional[_Iterable[_Union[BulkOutcome, _Mapping]]] = ..., truncated: bool = ...) -> None: ...

class QueuedSignal(_message.Message):
    __slots__ = ("name", "data_json", "sender", "received_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    data_json: str
    sender: str
    received_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., data_json: _Optional[str] = ..., sender: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SignalWait(_message.Message):
    __slots__ = ("step", "name", "timeout_at")
    STEP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_AT_FIELD_NUMBER: _ClassVar[int]
    step: str
    name: str
    timeout_at: _timestamp_pb2.Timestamp
    def __init__(self, step: _Optional[str] = ..., name: _Optional[str] = ..., timeout_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ChildExecution(_message.Message):
    __slots__ = ("step", "id", "workflow", "phase")
    STEP_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    step: str
    id: str
    workflow: str
    phase: str
    def __init__(self, step: _Optional[str] = ..., id: _Optional[str] = ..., workflow: _Optional[str] = ..., phase: _Optional[str] = ...) -> None: ...

class GetExecutionRequest(_message.Message):
    __slots__ = ("id", "latest_run")
    ID_FIELD_NUMBER: _ClassVar[int]
    LATEST_RUN_FIELD_NUMBER: _ClassVar[int]
    id: str
    latest_run: bool
    def __init__(self, id: _Optional[str] = ..., latest_run: bool = ...) -> None: ...

class ListExecutionsRequest(_message.Message):
    __slots__ = ("workflow", "phase", "limit", "labels", "phases", "created_after", "created_before", "id_contains", "page_token")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    ID_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workflow: str
    phase: str
    limit: int
    labels: _containers.ScalarMap[str, str]
    phases: _containers.RepeatedScalarFieldContainer[str]
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    id_contains: str
    page_token: str
    def __init__(self, workflow: _Optional[str] = ..., phase: _Optional[str] = ..., limit: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., phases: _Optional[_Iterable[str]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., id_contains: _Optional[str] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListExecutionsResponse(_message.Message):
    __slots__ = ("executions", "next_page_token")
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[ExecutionInfo]
    next_page_token: str
    def __init__(self, executions: _Optional[_Iterable[_Union[ExecutionInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetHistoryRequest(_message.Message):
    __slots__ = ("id", "after_seq", "limit")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_seq: int
    limit: int
    def __init__(self, id: _Optional[str] = ..., after_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class HistoryEvent(_message.Message):
    __slots__ = ("seq", "type", "at_ms", "data_json", "at")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    type: str
    at_ms: int
    data_json: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, seq: _Optional[int] = ..., type: _Optional[str] = ..., at_ms: _Optional[int] = ..., data_json: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetHistoryResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[HistoryEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[HistoryEvent, _Mapping]]] = ...) -> None: ...

class WaitExecutionRequest(_message.Message):
    __slots__ = ("id", "wait_ms", "follow_runs")
    ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_RUNS_FIELD_NUMBER: _ClassVar[int]
    id: str
    wait_ms: int
    follow_runs: bool
    def __init__(self, id: _Optional[str] = ..., wait_ms: _Optional[int] = ..., follow_runs: bool = ...) -> None: ...

class ApproveRequest(_message.Message):
    __slots__ = ("id", "step", "approver", "payload_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    APPROVER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    step: str
    approver: str
    payload_json: str
    def __init__(self, id: _Optional[str] = ..., step: _Optional[str] = ..., approver: _Optional[str] = ..., payload_json: _Optional[str] = ...) -> None: ...

class RejectRequest(_message.Message):
    __slots__ = ("id", "step", "approver", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    APPROVER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    step: str
    approver: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., step: _Optional[str] = ..., approver: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelExecutionRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SignalExecutionRequest(_message.Message):
    __slots__ = ("id", "name", "data_json", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    data_json: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., data_json: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SignalWithStartRequest(_message.Message):
    __slots__ = ("workflow", "execution_id", "input_json", "name", "data_json", "request_id", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    workflow: str
    execution_id: str
    input_json: str
    name: str
    data_json: str
    request_id: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, workflow: _Optional[str] = ..., execution_id: _Optional[str] = ..., input_json: _Optional[str] = ..., name: _Optional[str] = ..., data_json: _Optional[str] = ..., request_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("id", "execution_id", "step", "attempt", "error", "created_at_ms", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    execution_id: str
    step: str
    attempt: int
    error: str
    created_at_ms: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., execution_id: _Optional[str] = ..., step: _Optional[str] = ..., attempt: _Optional[int] = ..., error: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters",)
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ...) -> None: ...

class RedriveDeadLetterRequest(_message.Message):
    __slots__ = ("id", "with_current_workflow")
    ID_FIELD_NUMBER: _ClassVar[int]
    WITH_CURRENT_WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    id: str
    with_current_workflow: bool
    def __init__(self, id: _Optional[str] = ..., with_current_workflow: bool = ...) -> None: ...
