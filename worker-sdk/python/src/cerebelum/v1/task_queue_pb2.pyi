import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RateLimit(_message.Message):
    __slots__ = ("count", "period_ms")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_MS_FIELD_NUMBER: _ClassVar[int]
    count: int
    period_ms: int
    def __init__(self, count: _Optional[int] = ..., period_ms: _Optional[int] = ...) -> None: ...

class ListTaskQueuesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTaskQueuesResponse(_message.Message):
    __slots__ = ("task_queues", "engines_not_counted")
    TASK_QUEUES_FIELD_NUMBER: _ClassVar[int]
    ENGINES_NOT_COUNTED_FIELD_NUMBER: _ClassVar[int]
    task_queues: _containers.RepeatedCompositeFieldContainer[TaskQueueInfo]
    engines_not_counted: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task_queues: _Optional[_Iterable[_Union[TaskQueueInfo, _Mapping]]] = ..., engines_not_counted: _Optional[_Iterable[str]] = ...) -> None: ...

class PauseTaskQueueRequest(_message.Message):
    __slots__ = ("name", "note")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    name: str
    note: str
    def __init__(self, name: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ResumeTaskQueueRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SetTaskQueueRateLimitRequest(_message.Message):
    __slots__ = ("name", "rate_limit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    rate_limit: RateLimit
    def __init__(self, name: _Optional[str] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ...) -> None: ...

class TaskQueueInfo(_message.Message):
    __slots__ = ("name", "paused", "note", "rate_limit", "updated_at", "ready", "scheduled", "running", "pollers", "last_poll", "waiting_reason", "waiting_until")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    POLLERS_FIELD_NUMBER: _ClassVar[int]
    LAST_POLL_FIELD_NUMBER: _ClassVar[int]
    WAITING_REASON_FIELD_NUMBER: _ClassVar[int]
    WAITING_UNTIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    paused: bool
    note: str
    rate_limit: RateLimit
    updated_at: _timestamp_pb2.Timestamp
    ready: int
    scheduled: int
    running: int
    pollers: int
    last_poll: _timestamp_pb2.Timestamp
    waiting_reason: str
    waiting_until: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., paused: bool = ..., note: _Optional[str] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ready: _Optional[int] = ..., scheduled: _Optional[int] = ..., running: _Optional[int] = ..., pollers: _Optional[int] = ..., last_poll: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., waiting_reason: _Optional[str] = ..., waiting_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
