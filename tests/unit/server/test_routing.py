"""Which execution a call is about, and what engines that split the shards refuse (server/routing.py)."""

from __future__ import annotations

import json

import pytest

from cerebelum.v1 import schedule_pb2, task_queue_pb2, worker_pb2, workflow_pb2
from cerebelum_operator.server.routing import BROADCAST, Target, refusal_of, target_of

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


def test_a_split_refuses_what_it_would_honour_on_some_executions_only() -> None:
    assert refusal_of(W + "BulkExecutions", workflow_pb2.BulkExecutionsRequest()) is None  # each owner acts on its own
    for method in (
        "TaskQueueService/PauseTaskQueue",
        "TaskQueueService/ResumeTaskQueue",
        "TaskQueueService/SetTaskQueueRateLimit",  # the store counts every engine's starts
        "WorkflowService/PauseWorkflow",
        "WorkflowService/ResumeWorkflow",
    ):  # every engine applies these (`BROADCAST`)
        path = "/cerebelum.v1." + method
        assert refusal_of(path, task_queue_pb2.PauseTaskQueueRequest(name="q")) is None and path in BROADCAST

    def apply(spec: dict[str, object]) -> str | None:
        return refusal_of(W + "ApplyWorkflow", workflow_pb2.ApplyWorkflowRequest(name="w", spec_json=json.dumps(spec)))

    assert apply({"timeline": ["a"], "flowControl": {"concurrency": 3}}) is None  # the store admits (FlowSlotTaken)
    assert apply({"timeline": ["a"], "flowControl": {"rateLimit": {"tasks": 5}}}) is None  # the store counts
    assert apply({"timeline": ["a"], "flowControl": {"priority": "2"}}) is None
    assert apply({"timeline": ["a"]}) is None
    assert refusal_of(W + "ApplyWorkflow", workflow_pb2.ApplyWorkflowRequest(name="w", spec_json="{not json")) is None
    assert refusal_of(W + "StartExecution", workflow_pb2.StartExecutionRequest()) is None
