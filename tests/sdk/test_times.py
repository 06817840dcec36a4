"""Times from the wire: the Timestamp fields, or the milliseconds an engine before 0.2 sends."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from cerebelum.models import Execution
from cerebelum.times import instant
from cerebelum.v1 import worker_pb2, workflow_pb2

AT = datetime(2031, 5, 6, 7, 8, 9, 10_000, tzinfo=UTC)
AT_MS = round(AT.timestamp() * 1000)


def stamp(when: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(when)
    return result


def test_a_timestamp_is_read_as_a_utc_datetime_even_when_the_milliseconds_disagree() -> None:
    task = worker_pb2.Task(attempt_deadline=stamp(AT), attempt_deadline_ms=1)
    assert instant(task, "attempt_deadline") == AT


def test_an_older_engine_that_sends_only_milliseconds_is_still_read() -> None:
    assert instant(worker_pb2.Task(attempt_deadline_ms=AT_MS), "attempt_deadline") == AT
    assert instant(worker_pb2.Task(), "attempt_deadline") is None


def test_the_execution_model_reads_its_times_from_the_timestamps() -> None:
    info = workflow_pb2.ExecutionInfo(id="e", workflow="w", phase="Sleeping", created_at=stamp(AT), wake_at=stamp(AT))
    execution = Execution.from_proto(info)
    assert (execution.created_at, execution.wake_at, execution.updated_at) == (AT, AT, None)
