"""The generated gRPC stubs (``*_pb2_grpc``), given the types their generated code lacks.

The method paths and (de)serializers come from the generated code only, so they cannot drift
from ``proto/``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import grpc

from cerebelum.v1 import schedule_pb2_grpc, worker_pb2, worker_pb2_grpc, workflow_pb2_grpc

__all__ = ["WorkerRpcs", "client_methods", "worker_rpcs", "workflow_methods"]


class WorkerRpcs(NamedTuple):
    """The ``WorkerService`` calls a worker makes."""

    poll: grpc.aio.UnaryUnaryMultiCallable[worker_pb2.PollTaskRequest, worker_pb2.PollTaskResponse]
    heartbeat: grpc.aio.UnaryUnaryMultiCallable[worker_pb2.HeartbeatRequest, worker_pb2.HeartbeatResponse]
    complete: grpc.aio.UnaryUnaryMultiCallable[worker_pb2.CompleteTaskRequest, worker_pb2.CompleteTaskResponse]
    complete_tasks: grpc.aio.UnaryUnaryMultiCallable[
        worker_pb2.CompleteTasksRequest, worker_pb2.CompleteTasksResponse
    ]  # several reports a call; an engine before it answers UNIMPLEMENTED
    history: grpc.aio.UnaryUnaryMultiCallable[
        worker_pb2.GetWorkflowHistoryRequest, worker_pb2.GetWorkflowHistoryResponse
    ]  # workflow tasks: the history a task does not carry
    work: grpc.aio.StreamStreamMultiCallable[
        worker_pb2.WorkCall, worker_pb2.WorkAnswer
    ]  # polls and reports on one stream (work_stream.py); an engine before it answers UNIMPLEMENTED


def worker_rpcs(channel: grpc.aio.Channel) -> WorkerRpcs:
    stub = worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]
    return WorkerRpcs(
        poll=stub.PollTask,
        heartbeat=stub.Heartbeat,
        complete=stub.CompleteTask,
        complete_tasks=stub.CompleteTasks,
        history=stub.GetWorkflowHistory,
        work=stub.Work,
    )


def workflow_methods(channel: grpc.Channel | grpc.aio.Channel) -> dict[str, Any]:
    """``WorkflowService`` method name -> its callable on ``channel`` (blocking or asyncio)."""
    stub = workflow_pb2_grpc.WorkflowServiceStub(channel)  # type: ignore[no-untyped-call]
    return {name: value for name, value in vars(stub).items() if not name.startswith("_")}


def client_methods(channel: grpc.Channel | grpc.aio.Channel) -> dict[str, Any]:
    """Every client RPC by method name: ``WorkflowService``'s and ``ScheduleService``'s (no name is in both)."""
    schedules = schedule_pb2_grpc.ScheduleServiceStub(channel)  # type: ignore[no-untyped-call]
    return {
        **workflow_methods(channel),
        **{name: value for name, value in vars(schedules).items() if not name.startswith("_")},
    }
