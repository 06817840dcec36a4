"""In-process fakes of the Cerebelum services for SDK unit tests (not the real engine)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from cerebelum import Worker
from cerebelum.v1 import worker_pb2, worker_pb2_grpc, workflow_pb2, workflow_pb2_grpc
from tests.support.waiting import eventually


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_task(
    step: str,
    *,
    input: Any = None,
    results: dict[str, Any] | None = None,
    vars: dict[str, Any] | None = None,
    outcome: dict[str, Any] | None = None,
    args: dict[str, Any] | None = None,
    item: Any = None,
    index: int | None = None,
    workflow_step: str = "",
    token: str | None = None,
    lease_ms: int = 30_000,
    heartbeat_required: bool = False,
    attempt: int = 1,
    run: int = 1,
    poll: int = 0,
    execution_id: str = "ex-1",
) -> worker_pb2.Task:
    arguments: dict[str, Any] = {"input": input, "results": results or {}}
    if vars is not None:  # absent, as from a workflow without variables or an engine before them
        arguments["vars"] = vars
    if outcome is not None:  # only a compensation or finally step's task carries it
        arguments["outcome"] = outcome
    if args is not None:  # only a step with args carries them
        arguments["args"] = args
    key = f"{execution_id}/{workflow_step or step}/{run}"
    if index is not None:  # only a forEach step's task carries them, its key ending with the index
        arguments["item"] = item
        arguments["index"] = index
        key = f"{key}/{index}"
    return worker_pb2.Task(
        task_token=token or f"token-{step}-{attempt}-{poll}",
        execution_id=execution_id,
        workflow="wf",
        step=step,  # the function to run
        workflow_step=workflow_step,  # empty, as from an engine before it, unless given
        attempt=attempt,
        run=run,
        idempotency_key=key,
        arguments_json=json.dumps(arguments),
        attempt_deadline_ms=1_900_000_000_000,
        lease_ms=lease_ms,
        heartbeat_required=heartbeat_required,
        poll=poll,
    )


class FakeWorkerService(worker_pb2_grpc.WorkerServiceServicer):
    """Hands out queued tasks, records heartbeats and completions, and fails on request."""

    def __init__(self) -> None:
        self.tasks: asyncio.Queue[worker_pb2.Task] = asyncio.Queue()
        self.polls: list[worker_pb2.PollTaskRequest] = []
        # (code, message) answered to the next PollTask calls, in order.
        self.poll_errors: list[tuple[grpc.StatusCode, str]] = []
        self.poll_metadata: list[dict[str, str]] = []
        self.heartbeats: list[worker_pb2.HeartbeatRequest] = []
        self.heartbeat_reply = worker_pb2.HeartbeatResponse()
        self.heartbeat_error: tuple[grpc.StatusCode, str] | None = None
        self.completions: list[worker_pb2.CompleteTaskRequest] = []
        self.complete_attempts = 0
        # (code, message) answered to the next CompleteTask calls, in order.
        self.complete_errors: list[tuple[grpc.StatusCode, str]] = []
        # code answered to every CompleteTask carrying a success (None: accept).
        self.reject_success: tuple[grpc.StatusCode, str] | None = None
        # The task handed back with the acknowledgement of a completion, by the completed task's token.
        self.next_tasks: dict[str, worker_pb2.Task] = {}
        self.address = ""

    async def PollTask(
        self, request: worker_pb2.PollTaskRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> worker_pb2.PollTaskResponse:
        self.polls.append(request)
        self.poll_metadata.append({key: str(value) for key, value in context.invocation_metadata() or ()})
        if self.poll_errors:
            await context.abort(*self.poll_errors.pop(0))
        try:
            task = await asyncio.wait_for(self.tasks.get(), request.wait_ms / 1000)
        except TimeoutError:
            return worker_pb2.PollTaskResponse()
        return worker_pb2.PollTaskResponse(task=task)

    async def Heartbeat(
        self, request: worker_pb2.HeartbeatRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> worker_pb2.HeartbeatResponse:
        self.heartbeats.append(request)
        if self.heartbeat_error is not None:
            await context.abort(*self.heartbeat_error)
        return self.heartbeat_reply

    async def CompleteTask(
        self, request: worker_pb2.CompleteTaskRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> worker_pb2.CompleteTaskResponse:
        self.complete_attempts += 1
        if self.complete_errors:
            code, message = self.complete_errors.pop(0)
            await context.abort(code, message)
        if self.reject_success is not None and request.WhichOneof("outcome") == "success":
            await context.abort(*self.reject_success)
        self.completions.append(request)
        reply = worker_pb2.CompleteTaskResponse(disposition=worker_pb2.CompleteTaskResponse.ACCEPTED)
        following = self.next_tasks.pop(request.task_token, None)
        if following is not None:
            reply.next_task.CopyFrom(following)
        return reply

    def completion(self, token: str) -> worker_pb2.CompleteTaskRequest | None:
        return next((c for c in self.completions if c.task_token == token), None)

    async def run_task(self, task: worker_pb2.Task, timeout: float = 5.0) -> worker_pb2.CompleteTaskRequest:
        """Queue ``task`` and return its completion."""
        await self.tasks.put(task)
        await eventually(
            lambda: self.completion(task.task_token) is not None, within=timeout, what="the task's completion"
        )
        completion = self.completion(task.task_token)
        assert completion is not None
        return completion


@asynccontextmanager
async def serve_worker_service(
    service: FakeWorkerService, port: int = 0, *, host: str = "127.0.0.1"
) -> AsyncIterator[FakeWorkerService]:
    server = grpc.aio.server()
    worker_pb2_grpc.add_WorkerServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    service.address = f"{host}:{bound}"
    try:
        yield service
    finally:
        await server.stop(None)


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``worker`` in the background; shut it down (bounded) on exit."""
    task = asyncio.create_task(worker.run_async())
    try:
        yield task
    finally:
        async with asyncio.timeout(15):
            await worker.shutdown()
            await task


class FakeWorkflowService(workflow_pb2_grpc.WorkflowServiceServicer):
    """A synchronous fake: answers from canned replies and records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.metadata: list[dict[str, str]] = []
        self.executions: dict[str, workflow_pb2.ExecutionInfo] = {}
        self.wait_replies: list[workflow_pb2.ExecutionInfo] = []
        self.history: list[workflow_pb2.HistoryEvent] = []
        self.history_page = 2
        self.dead_letters: list[workflow_pb2.DeadLetter] = []
        self.address = ""

    def _record(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        self.requests.append((method, request))
        self.metadata.append({key: str(value) for key, value in context.invocation_metadata()})

    def _execution(self, id: str, context: grpc.ServicerContext) -> workflow_pb2.ExecutionInfo:
        if id not in self.executions:
            context.abort(grpc.StatusCode.NOT_FOUND, f"execution {id!r} not found")
        return self.executions[id]

    def ApplyWorkflow(
        self, request: workflow_pb2.ApplyWorkflowRequest, context: grpc.ServicerContext
    ) -> workflow_pb2.WorkflowInfo:
        self._record("ApplyWorkflow", request, context)
        if not request.spec_json.startswith("{"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "spec must be an object")
        return workflow_pb2.WorkflowInfo(
            name=request.name, spec_json=request.spec_json, version=3, updated_at_ms=1_700_000_000_000
        )

    def StartExecution(
        self, request: workflow_pb2.StartExecutionRequest, context: grpc.ServicerContext
    ) -> workflow_pb2.ExecutionInfo:
        self._record("StartExecution", request, context)
        info = workflow_pb2.ExecutionInfo(
            id=request.execution_id or "generated-1",
            workflow=request.workflow,
            phase="Pending",
            input_json=request.input_json,
            created_at_ms=1_700_000_000_000,
        )
        self.executions[info.id] = info
        return info

    def GetExecution(
        self, request: workflow_pb2.GetExecutionRequest, context: grpc.ServicerContext
    ) -> workflow_pb2.ExecutionInfo:
        self._record("GetExecution", request, context)
        return self._execution(request.id, context)

    def ListExecutions(
        self, request: workflow_pb2.ListExecutionsRequest, context: grpc.ServicerContext
    ) -> workflow_pb2.ListExecutionsResponse:
        self._record("ListExecutions", request, context)
        return workflow_pb2.ListExecutionsResponse(executions=list(self.executions.values()))

    def GetHistory(
        self, request: workflow_pb2.GetHistoryRequest, context: grpc.ServicerContext
    ) -> workflow_pb2.GetHistoryResponse:
        self._record("GetHistory", request, context)
        events = [event for event in self.history if event.seq > request.after_seq][: self.history_page]
        return workflow_pb2.GetHistoryResponse(events=events)

    def WaitExecution(
        self, request: workflow_pb2.WaitExecutionRequest, context: grpc.ServicerContext
    ) -> workflow_pb2.ExecutionInfo:
        self._record("WaitExecution", request, context)
        if self.wait_replies:
            return self.wait_replies.pop(0)
        return self._execution(request.id, context)

    def Approve(
        self, request: workflow_pb2.ApproveRequest, context: grpc.ServicerContext
    ) -> workflow_pb2.ExecutionInfo:
        self._record("Approve", request, context)
        return self._execution(request.id, context)

    def Reject(self, request: workflow_pb2.RejectRequest, context: grpc.ServicerContext) -> workflow_pb2.ExecutionInfo:
        self._record("Reject", request, context)
        return self._execution(request.id, context)

    def CancelExecution(
        self, request: workflow_pb2.CancelExecutionRequest, context: grpc.ServicerContext
    ) -> workflow_pb2.ExecutionInfo:
        self._record("CancelExecution", request, context)
        if request.id in self.executions and self.executions[request.id].phase == "Succeeded":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "execution already finished")
        return self._execution(request.id, context)

    def ListDeadLetters(
        self, request: workflow_pb2.ListDeadLettersRequest, context: grpc.ServicerContext
    ) -> workflow_pb2.ListDeadLettersResponse:
        self._record("ListDeadLetters", request, context)
        letters = [d for d in self.dead_letters if not request.execution_id or d.execution_id == request.execution_id]
        return workflow_pb2.ListDeadLettersResponse(dead_letters=letters)

    def RedriveDeadLetter(
        self, request: workflow_pb2.RedriveDeadLetterRequest, context: grpc.ServicerContext
    ) -> workflow_pb2.ExecutionInfo:
        self._record("RedriveDeadLetter", request, context)
        letter = next((d for d in self.dead_letters if d.id == request.id), None)
        if letter is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"dead letter {request.id!r} not found")
        assert letter is not None
        return self._execution(letter.execution_id, context)

    # -- signals (issue 17) ---------------------------------------------------------------------

    def SignalExecution(
        self, request: workflow_pb2.SignalExecutionRequest, context: grpc.ServicerContext
    ) -> workflow_pb2.ExecutionInfo:
        """Queues the signal on the execution, as the engine does while no signal step takes it."""
        self._record("SignalExecution", request, context)
        info = self._execution(request.id, context)
        info.queued_signals.add(
            name=request.name, data_json=request.data_json, sender="fake"
        ).received_at.FromMilliseconds(1_700_000_002_000)
        return info

    def SignalWithStart(
        self, request: workflow_pb2.SignalWithStartRequest, context: grpc.ServicerContext
    ) -> workflow_pb2.ExecutionInfo:
        self._record("SignalWithStart", request, context)
        if request.execution_id not in self.executions:
            self.executions[request.execution_id] = workflow_pb2.ExecutionInfo(
                id=request.execution_id, workflow=request.workflow, phase="Pending", input_json=request.input_json
            )
        info = self.executions[request.execution_id]
        info.queued_signals.add(name=request.name, data_json=request.data_json, sender="fake")
        return info
