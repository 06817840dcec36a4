"""The worker's reports batched with CompleteTasks (carried on its Work stream), against a real engine:
reports that become ready together go in one call and their next tasks come back in its reply; against
an engine without CompleteTasks (it answers UNIMPLEMENTED) the worker reports with CompleteTask and runs
just as well."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

import cerebelum.worker
from cerebelum import AsyncClient, Worker
from cerebelum.stubs import WorkerRpcs, worker_rpcs
from cerebelum.v1 import worker_pb2
from cerebelum.work_stream import WorkStream
from cerebelum_operator.api import Guard, WorkerServicer
from cerebelum_operator.server import EngineServer, ServerConfig
from tests.support.processes import EngineProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

FLOW = {"taskQueue": "batched", "timeline": ["gather", "second", "third"]}
N = 5


class Recorded:
    """The worker's CompleteTasks calls (on its Work stream, or unary against an engine without it) and
    CompleteTask calls, as they went and came back."""

    def __init__(self) -> None:
        self.batches: list[tuple[worker_pb2.CompleteTasksRequest, worker_pb2.CompleteTasksResponse | None]] = []
        self.singles: list[worker_pb2.CompleteTaskRequest] = []
        self.refused: list[grpc.StatusCode] = []

    def wrap(self, rpcs: WorkerRpcs) -> WorkerRpcs:
        async def complete(request: worker_pb2.CompleteTaskRequest, **kwargs: Any) -> Any:
            self.singles.append(request)
            return await rpcs.complete(request, **kwargs)

        return rpcs._replace(complete=complete)  # type: ignore[arg-type]  # a fake

    def stream_class(self) -> type[WorkStream]:
        calls = self

        class RecordingStream(WorkStream):
            async def complete_tasks(
                self, request: worker_pb2.CompleteTasksRequest, **kwargs: Any
            ) -> worker_pb2.CompleteTasksResponse:
                try:
                    reply = await super().complete_tasks(request, **kwargs)
                except grpc.aio.AioRpcError as exc:
                    calls.refused.append(exc.code())
                    calls.batches.append((request, None))
                    raise
                calls.batches.append((request, reply))
                return reply

        return RecordingStream


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    calls = Recorded()
    monkeypatch.setattr(cerebelum.worker, "worker_rpcs", lambda channel: calls.wrap(worker_rpcs(channel)))
    monkeypatch.setattr(cerebelum.worker, "WorkStream", calls.stream_class())
    return calls


def gathering_worker(address: str) -> Worker:
    """A worker whose N `gather` steps finish together: each waits until all N run."""
    worker = Worker("batched", address=address, max_concurrency=N, poll_wait=1.0)
    running = 0
    everyone = asyncio.Event()

    @worker.step()
    async def gather(input: Any) -> int:
        nonlocal running
        running += 1
        if running == N:
            everyone.set()
        await everyone.wait()
        return 1

    @worker.step()
    async def second(input: Any) -> int:
        return 2

    @worker.step()
    async def third(input: Any) -> int:
        return 3

    return worker


@asynccontextmanager
async def serving(worker: Worker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run_async())
    try:
        yield
    finally:
        await worker.shutdown()
        await task


async def run_executions(address: str, worker: Worker) -> list[str]:
    async with AsyncClient(address=address) as client, serving(worker):
        await client.apply_workflow("batched", FLOW)
        ids = [f"batched-{i}" for i in range(N)]
        for execution_id in ids:
            await client.start("batched", {}, execution_id=execution_id)
        finished = [await client.wait(execution_id, timeout=60) for execution_id in ids]
    return [execution.phase for execution in finished]


async def test_reports_ready_together_go_in_one_call_and_their_next_tasks_come_back_in_its_reply(
    engine: EngineProcess, recorded: Recorded
) -> None:
    phases = await run_executions(engine.address, gathering_worker(engine.address))

    assert phases == ["Succeeded"] * N
    assert not recorded.singles and not recorded.refused
    sizes = [len(request.reports) for request, _ in recorded.batches]
    assert sum(sizes) == 3 * N, "every step's report went in a CompleteTasks call, once"
    # The N gather steps finished at once (in one turn of the loop, before the call went): one call.
    assert sizes[0] == N, sizes
    _, reply = recorded.batches[0]
    assert reply is not None
    assert all(result.reply.disposition == worker_pb2.CompleteTaskResponse.ACCEPTED for result in reply.results)
    # No poll was in flight (every slot was busy): each freed slot got an execution's `second` step back.
    assert [result.reply.next_task.step for result in reply.results] == ["second"] * N
    assert sorted(result.reply.next_task.execution_id for result in reply.results) == [f"batched-{i}" for i in range(N)]


@asynccontextmanager
async def older_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EngineServer]:
    """A real engine in this process, answering CompleteTasks as an engine that predates it does."""

    async def unimplemented(self: WorkerServicer, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")

    monkeypatch.setattr(WorkerServicer, "CompleteTasks", unimplemented)
    config = ServerConfig(address="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'engine.db'}", guard=Guard())
    server = EngineServer(config)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(0)


async def test_against_an_engine_without_complete_tasks_the_worker_reports_with_complete_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    async with older_engine(tmp_path, monkeypatch) as server:
        address = f"127.0.0.1:{server.port}"
        phases = await run_executions(address, gathering_worker(address))

    assert phases == ["Succeeded"] * N
    assert recorded.refused == [grpc.StatusCode.UNIMPLEMENTED], "asked once, then never again"
    assert len(recorded.singles) == 3 * N
    assert len({single.task_token for single in recorded.singles}) == 3 * N


async def test_the_engine_answers_a_bad_report_on_its_own_and_refuses_a_call_over_the_count_limit(
    engine: EngineProcess,
) -> None:
    async with AsyncClient(address=engine.address) as client, grpc.aio.insecure_channel(engine.address) as channel:
        await client.apply_workflow("batched", FLOW)
        await client.start("batched", {}, execution_id="raw-1")
        rpcs = worker_rpcs(channel)
        polled = await rpcs.poll(
            worker_pb2.PollTaskRequest(worker_id="raw", task_queue="batched", steps=["gather"], wait_ms=5000)
        )
        good = worker_pb2.CompleteTaskRequest(
            task_token=polled.task.task_token, worker_id="raw", success=worker_pb2.Success(output_json="1")
        )
        good.poll_next.CopyFrom(worker_pb2.PollTaskRequest(task_queue="batched", steps=["second"]))
        bad = worker_pb2.CompleteTaskRequest(task_token="nope", worker_id="raw", success=worker_pb2.Success())

        reply = await rpcs.complete_tasks(worker_pb2.CompleteTasksRequest(reports=[bad, good]))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await rpcs.complete_tasks(worker_pb2.CompleteTasksRequest(reports=[bad] * 257))

    assert reply.results[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "malformed task_token" in reply.results[0].error.message
    assert reply.results[1].reply.disposition == worker_pb2.CompleteTaskResponse.ACCEPTED
    assert reply.results[1].reply.next_task.step == "second"
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "limit of 256 reports a call" in (refused.value.details() or "")
