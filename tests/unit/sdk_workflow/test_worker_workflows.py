"""``Worker`` with workflow functions: registration, polling, and workflow tasks over gRPC (a fake engine)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from cerebelum import Worker
from cerebelum.v1 import worker_pb2
from cerebelum.workflow import WorkflowContext
from tests.sdk.fakes import FakeWorkerService, running, serve_worker_service
from tests.support.waiting import eventually

from .histories import History


class WorkflowEngine(FakeWorkerService):
    """The SDK tests' fake WorkerService, with GetWorkflowHistory and a way to await a completion."""

    def __init__(self) -> None:
        super().__init__()
        self.histories: dict[str, History] = {}
        self.history_requests: list[worker_pb2.GetWorkflowHistoryRequest] = []
        self.completed = asyncio.Condition()

    async def GetWorkflowHistory(
        self, request: worker_pb2.GetWorkflowHistoryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> worker_pb2.GetWorkflowHistoryResponse:
        self.history_requests.append(request)
        events = self.histories[request.task_token].after(request.after_seq)[:2]
        return worker_pb2.GetWorkflowHistoryResponse(history_json=json.dumps(events))

    async def CompleteTask(
        self, request: worker_pb2.CompleteTaskRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> worker_pb2.CompleteTaskResponse:
        reply = await super().CompleteTask(request, context)
        async with self.completed:
            self.completed.notify_all()
        return reply

    async def answer(self, task: worker_pb2.Task) -> worker_pb2.CompleteTaskRequest:
        await self.tasks.put(task)
        async with asyncio.timeout(10), self.completed:
            await self.completed.wait_for(lambda: self.completion(task.task_token) is not None)
        completion = self.completion(task.task_token)
        assert completion is not None
        return completion


@pytest.fixture
async def engine() -> AsyncIterator[WorkflowEngine]:
    service = WorkflowEngine()
    async with serve_worker_service(service):
        yield service


async def greet(wf: WorkflowContext, input: str) -> str:
    name = await wf.step("lookup", user=input)
    return f"hello {name}"


def test_workflows_are_registered_by_name_and_refused_twice_or_when_not_async() -> None:
    worker = Worker("q")
    worker.workflow()(greet)
    worker.workflow(name="hello")(greet)
    assert worker.workflow_names == ("greet", "hello")
    with pytest.raises(ValueError, match="already registered"):
        worker.workflow(greet)
    with pytest.raises(TypeError, match="async"):

        @worker.workflow(name="sync")
        def sync(wf: WorkflowContext) -> None: ...


def test_step_pollers_ask_for_the_steps_and_workflow_pollers_for_the_workflows() -> None:
    worker = Worker("q", poll_wait=2)

    @worker.step()
    async def lookup(user: str) -> str:
        return user

    worker.workflow()(greet)
    steps, workflows = worker._poll_request(steps=True), worker._poll_request(steps=False)
    assert (list(steps.steps), list(steps.workflows), steps.wait_ms) == (["lookup"], [], 2000)
    assert (list(workflows.steps), list(workflows.workflows), workflows.wait_ms) == ([], ["greet"], 2000)


async def test_a_step_holding_every_slot_does_not_stop_workflow_tasks(engine: WorkflowEngine) -> None:
    worker = Worker("q", address=engine.address, poll_wait=1, max_concurrency=1)
    release = asyncio.Event()

    @worker.step()
    async def lookup(user: str) -> str:
        await release.wait()
        return user

    worker.workflow()(greet)
    history = History("ann")
    token, started = history.task_started()
    workflow_task = worker_pb2.Task(
        task_token=token,
        execution_id="ex-1",
        workflow="greet",
        workflow_task=worker_pb2.WorkflowTask(
            function="greet", history_after_seq=0, history_json=json.dumps(history.events), started_seq=started
        ),
    )
    step_task = worker_pb2.Task(
        task_token="ex-2/lookup#1/1/0/5",
        execution_id="ex-2",
        workflow="greet",
        step="lookup",
        workflow_step="lookup#1",
        attempt=1,
        arguments_json=json.dumps({"input": None, "results": {}, "args": {"user": "bob"}}),
        lease_ms=30_000,
    )
    async with running(worker):
        await engine.tasks.put(step_task)
        await eventually(lambda: worker.active_steps, what="the step to take the only slot")  # and keep it
        answered = await engine.answer(workflow_task)
        assert answered.WhichOneof("outcome") == "workflow_commands"
        assert engine.completion(step_task.task_token) is None, "the step still runs"
        release.set()


def test_a_registered_step_is_named_by_wf_step_under_its_registered_name() -> None:
    worker = Worker("q")

    async def charge_card() -> None: ...

    worker.step(name="charge")(charge_card)
    assert getattr(charge_card, "__cerebelum_step__", None) == "charge"


def test_the_cache_size_is_checked() -> None:
    with pytest.raises(ValueError, match="max_cached_workflows"):
        Worker("q", max_cached_workflows=-1)


async def test_a_workflows_only_worker_answers_workflow_tasks_and_reads_missing_history(engine: WorkflowEngine) -> None:
    worker = Worker("q", address=engine.address, poll_wait=1, max_cached_workflows=10)
    worker.workflow()(greet)
    history = History("ann")
    token, started = history.task_started()
    task = worker_pb2.Task(
        task_token=token,
        execution_id="ex-1",
        workflow="greet",
        workflow_task=worker_pb2.WorkflowTask(
            function="greet", history_after_seq=0, history_json=json.dumps(history.events), started_seq=started
        ),
    )
    async with running(worker):
        first = await engine.answer(task)
        assert first.WhichOneof("outcome") == "workflow_commands"
        commands = json.loads(first.workflow_commands.commands_json)
        assert commands == [{"type": "step", "id": 1, "function": "lookup", "args": {"user": "ann"}}]
        assert list(engine.polls[0].workflows) == ["greet"] and list(engine.polls[0].steps) == []

        recorded = history.task_completed(token, commands)
        history.step_completed(recorded[0]["step"], "Ann")
        token2, started2 = history.task_started()
        engine.histories[token2] = history
        # As from an engine that sends a non-sticky task: the worker reads the whole history itself.
        second = await engine.answer(
            worker_pb2.Task(
                task_token=token2,
                execution_id="ex-1",
                workflow="greet",
                workflow_task=worker_pb2.WorkflowTask(
                    function="greet", history_after_seq=started + 100, history_json="[]", started_seq=started2
                ),
            )
        )
    assert json.loads(second.workflow_commands.commands_json) == [{"type": "complete", "output": "hello Ann"}]
    assert [r.after_seq for r in engine.history_requests] == [0, 2, 4]
    assert {r.task_token for r in engine.history_requests} == {token2}
