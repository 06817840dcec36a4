"""Which execution a call is about, and what engines that split the shards refuse (server/routing.py)."""

from __future__ import annotations

import pytest

from cerebelum.v1 import schedule_pb2, worker_pb2, workflow_pb2
from cerebelum_operator.server.routing import BROADCAST, Target, target_of

W = "/cerebelum.v1.WorkflowService/"


@pytest.mark.parametrize(
    ("method", "request_", "target"),
    [
        (
            W + "StartExecution",
            workflow_pb2.StartExecutionRequest(workflow="w", execution_id="e1"),
            Target("e1", new=True),
        ),
        (W + "StartExecution", workflow_pb2.StartExecutionRequest(workflow="w"), None),
        (W + "SignalExecution", workflow_pb2.SignalExecutionRequest(id="e2", name="go"), Target("e2")),
        (W + "WaitExecution", workflow_pb2.WaitExecutionRequest(id="e3"), Target("e3")),
        (W + "RedriveDeadLetter", workflow_pb2.RedriveDeadLetterRequest(id="e4/pay/3/0/7"), Target("e4")),
        (W + "ListExecutions", workflow_pb2.ListExecutionsRequest(), None),
        (
            "/cerebelum.v1.WorkerService/CompleteTask",
            worker_pb2.CompleteTaskRequest(task_token="e5/pay/1/0/4"),
            Target("e5"),
        ),
        ("/cerebelum.v1.WorkerService/CompleteTask", worker_pb2.CompleteTaskRequest(task_token="junk"), None),
        ("/cerebelum.v1.WorkerService/PollTask", worker_pb2.PollTaskRequest(), None),
        ("/cerebelum.v1.ScheduleService/TriggerSchedule", schedule_pb2.TriggerScheduleRequest(), Target("", shard=0)),
    ],
)
def test_a_call_is_routed_by_the_execution_it_names(method: str, request_: object, target: Target | None) -> None:
    assert target_of(method, request_) == target


def test_the_settings_every_engine_of_a_split_applies_are_broadcast() -> None:
    for method in (
        "TaskQueueService/PauseTaskQueue",
        "TaskQueueService/ResumeTaskQueue",
        "TaskQueueService/SetTaskQueueRateLimit",  # the store counts every engine's starts
        "WorkflowService/PauseWorkflow",
        "WorkflowService/ResumeWorkflow",
    ):
        assert "/cerebelum.v1." + method in BROADCAST
