"""A real EngineServer in this process (its own event loop on a thread), and a well-behaved client.

The client runs whole executions through the public gRPC API (start, poll, complete, wait) and
checks their histories, so a fuzzing test can ask, after every bad request, "is everyone else
still served, and is every history still whole?".
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from cerebelum.v1 import worker_pb2, worker_pb2_grpc, workflow_pb2, workflow_pb2_grpc
from cerebelum_operator.engine import ExecutionPhase, fold
from cerebelum_operator.engine.events import RecordedEvent, event_from_record
from cerebelum_operator.model import compile_workflow
from cerebelum_operator.server import EngineServer, ServerConfig

MAX_PAYLOAD_BYTES = 64 * 1024
# What EngineServer sets as grpc.max_receive_message_length for that payload limit.
MAX_MESSAGE_BYTES = 2 * MAX_PAYLOAD_BYTES + 1024 * 1024
CALL_TIMEOUT_S = 30.0  # generous: the machine is shared; a server that stopped answering still fails
PROBE_SPEC: dict[str, Any] = {"taskQueue": "probe-q7", "timeline": ["a", ["b", "c"]]}


class ServerThread:
    """EngineServer on SQLite, served from an event loop of its own."""

    def __init__(self, database: Path) -> None:
        self.config = ServerConfig(
            address="127.0.0.1:0",
            database_url=f"sqlite:///{database}",
            max_payload_bytes=MAX_PAYLOAD_BYTES,
            max_poll_wait_ms=200,
            sticky_window_ms=0,
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="engine-server", daemon=True)
        self.server = EngineServer(self.config)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def spec_of(self, execution_id: str) -> dict[str, Any]:
        """The spec the execution started with (a snapshot; the workflow may have changed since)."""
        engine = self.server.engine
        loaded = asyncio.run_coroutine_threadsafe(
            engine.db.run(engine.db.store.load_execution, execution_id), self.loop
        ).result(30)
        assert loaded is not None, f"{execution_id} is not in the store"
        spec: dict[str, Any] = loaded[0].spec
        return spec

    async def _shutdown(self) -> None:
        await self.server.stop(0.5)
        current = asyncio.current_task()
        others = [task for task in asyncio.all_tasks() if task is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)


def channel(address: str) -> grpc.Channel:
    """A client channel that sends whatever we give it (no client-side size limit)."""
    return grpc.insecure_channel(
        address, options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    )


@dataclass
class Client:
    """A well-behaved client and worker of the probe workflow."""

    channel: grpc.Channel
    name: str = "probe"
    queue: str = PROBE_SPEC["taskQueue"]
    finished: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workflows = workflow_pb2_grpc.WorkflowServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.workers = worker_pb2_grpc.WorkerServiceStub(self.channel)  # type: ignore[no-untyped-call]

    def apply(self) -> None:
        spec = {**PROBE_SPEC, "taskQueue": self.queue}
        request = workflow_pb2.ApplyWorkflowRequest(name=self.name, spec_json=json.dumps(spec))
        self.workflows.ApplyWorkflow(request, timeout=CALL_TIMEOUT_S)

    def run_one_execution(self) -> str:
        """Start an execution, run its three steps as a worker, and check it succeeded whole."""
        execution_id = f"{self.name}-{uuid.uuid4().hex[:12]}"
        start = workflow_pb2.StartExecutionRequest(
            workflow=self.name, input_json=json.dumps({"n": len(self.finished)}), execution_id=execution_id
        )
        self.workflows.StartExecution(start, timeout=CALL_TIMEOUT_S)
        done: set[str] = set()
        for _ in range(100):
            if done == {"a", "b", "c"}:
                break
            poll = worker_pb2.PollTaskRequest(
                worker_id=f"{self.name}-worker", task_queue=self.queue, steps=["a", "b", "c"], wait_ms=200
            )
            task = self.workers.PollTask(poll, timeout=CALL_TIMEOUT_S)
            if not task.HasField("task"):
                continue
            assert task.task.execution_id == execution_id, f"{self.name} got another execution's task"
            complete = worker_pb2.CompleteTaskRequest(
                task_token=task.task.task_token,
                worker_id=f"{self.name}-worker",
                success=worker_pb2.Success(output_json=json.dumps({"step": task.task.step})),
            )
            reply = self.workers.CompleteTask(complete, timeout=CALL_TIMEOUT_S)
            assert reply.disposition == worker_pb2.CompleteTaskResponse.ACCEPTED
            done.add(task.task.step)
        wait = workflow_pb2.WaitExecutionRequest(id=execution_id, wait_ms=5_000)
        info = self.workflows.WaitExecution(wait, timeout=CALL_TIMEOUT_S)
        assert info.phase == "Succeeded", f"{execution_id} is {info.phase}: {info.error}"
        assert json.loads(info.output_json) == {"b": {"step": "b"}, "c": {"step": "c"}}
        check_history(self.workflows, execution_id)
        self.finished.append(execution_id)
        return execution_id


def check_history(workflows: Any, execution_id: str, spec: dict[str, Any] | None = None) -> None:
    """The history is whole: seqs 1..n, every event readable, and its replay agrees with the index.

    `spec` is the one the execution started with; by default the workflow's current one.
    """
    info = workflows.GetExecution(workflow_pb2.GetExecutionRequest(id=execution_id), timeout=CALL_TIMEOUT_S)
    reply = workflows.GetHistory(workflow_pb2.GetHistoryRequest(id=execution_id, limit=1000), timeout=CALL_TIMEOUT_S)
    seqs = [e.seq for e in reply.events]
    assert seqs == list(range(1, len(seqs) + 1)), f"{execution_id}: seqs {seqs}"
    assert len(seqs) == info.event_count, f"{execution_id}: {len(seqs)} events, the index says {info.event_count}"
    assert reply.events and reply.events[0].type == "ExecutionStarted"
    history = [
        RecordedEvent(e.seq, e.at_ms, event_from_record(e.type, json.loads(e.data_json) if e.data_json else {}))
        for e in reply.events
    ]
    if spec is None:
        current = workflows.GetWorkflow(workflow_pb2.GetWorkflowRequest(name=info.workflow), timeout=CALL_TIMEOUT_S)
        spec = json.loads(current.spec_json)
    state = fold(compile_workflow(spec), execution_id, history)
    if state.phase.terminal:
        assert info.phase == state.phase.value, f"{execution_id}: index {info.phase}, history {state.phase}"
        ends = [e for e in history if e.event.kind in {"ExecutionSucceeded", "ExecutionFailed", "ExecutionCancelled"}]
        assert ends[-1] is history[-1], f"{execution_id}: events after the end"
    else:
        assert info.phase not in {p.value for p in ExecutionPhase if p.terminal}


class Background:
    """A client running executions on a thread for as long as a test fuzzes the server."""

    def __init__(self, address: str) -> None:
        self.channel = channel(address)
        self.client = Client(self.channel, name="background", queue="background-q3")
        self.client.apply()
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="background-client", daemon=True)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.client.run_one_execution()
            except BaseException as exc:
                self.errors.append(exc)
                return

    @contextmanager
    def running(self) -> Iterator[Client]:
        self.thread.start()
        try:
            yield self.client
        finally:
            self.stopping.set()
            self.thread.join(60)
            self.channel.close()
        assert not self.errors, f"the background client failed: {self.errors[0]!r}"
        assert self.client.finished, "the background client finished no execution"
