"""CompleteTasks: several reports in one call, each one handled, authorised and answered as CompleteTask
handles one. The engine, store (SQLite file) and gRPC server are real and in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from cerebelum.v1 import worker_pb2, worker_pb2_grpc
from cerebelum_operator.api import AccessPolicy, Guard, Identity, Unauthenticated, worker_service
from cerebelum_operator.api.limits import MAX_REPORTS_PER_CALL
from cerebelum_operator.model.limits import message_limit
from cerebelum_operator.server import EngineServer
from tests.unit.api.conftest import serve

pytestmark = pytest.mark.timeout(60)

FLOW = {"taskQueue": "jobs", "timeline": ["a", "b"]}
NEXT = worker_pb2.PollTaskRequest(worker_id="w1", task_queue="jobs", steps=["a", "b"])


@pytest.fixture
async def stub(server: EngineServer) -> AsyncIterator[worker_pb2_grpc.WorkerServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated: untyped


async def start(server: EngineServer, workflow: str, *execution_ids: str) -> None:
    db = server.engine.db
    await db.run(db.store.put_workflow, workflow, FLOW, now_ms=server.clock.now_ms())
    for execution_id in execution_ids:
        await server.engine.start(workflow, {}, execution_id=execution_id)


async def poll_all(stub: worker_pb2_grpc.WorkerServiceStub, count: int, **metadata: str) -> list[worker_pb2.Task]:
    tasks = []
    for _ in range(count):
        reply = await stub.PollTask(
            worker_pb2.PollTaskRequest(worker_id="w1", task_queue="jobs", steps=["a", "b"], wait_ms=0),
            metadata=tuple(metadata.items()),
        )
        assert reply.HasField("task")
        tasks.append(reply.task)
    return tasks


def success(task: worker_pb2.Task, output: str = "1", *, poll_next: bool = True) -> worker_pb2.CompleteTaskRequest:
    report = worker_pb2.CompleteTaskRequest(
        task_token=task.task_token, worker_id="w1", success=worker_pb2.Success(output_json=output)
    )
    if poll_next:
        report.poll_next.CopyFrom(NEXT)
    return report


async def test_each_report_s_next_task_comes_back_in_the_batch_reply_leased_durably(
    server: EngineServer, stub: worker_pb2_grpc.WorkerServiceStub
) -> None:
    await start(server, "flow", "e1", "e2", "e3")
    firsts = await poll_all(stub, 3)

    reply = await stub.CompleteTasks(worker_pb2.CompleteTasksRequest(reports=[success(t) for t in firsts]))

    assert len(reply.results) == 3
    nexts = []
    for result in reply.results:
        assert result.reply.disposition == worker_pb2.CompleteTaskResponse.ACCEPTED
        assert result.reply.next_task.step == "b"
        nexts.append(result.reply.next_task)
    # Each slot freed gets one of the next steps (not necessarily its own execution's).
    assert sorted(task.execution_id for task in nexts) == sorted(task.execution_id for task in firsts)
    rows = {row.token: row for row in await server.engine.db.run(server.engine.db.store.load_tasks)}
    assert all(rows[task.task_token].state == "leased" and rows[task.task_token].worker_id == "w1" for task in nexts)

    done = await stub.CompleteTasks(worker_pb2.CompleteTasksRequest(reports=[success(t) for t in nexts]))
    assert [r.reply.disposition for r in done.results] == [worker_pb2.CompleteTaskResponse.ACCEPTED] * 3
    for execution_id in ("e1", "e2", "e3"):
        assert (await server.engine.state_of(execution_id)).phase.value == "Succeeded"


async def test_one_bad_report_gets_its_own_error_and_the_others_are_recorded(
    server: EngineServer, stub: worker_pb2_grpc.WorkerServiceStub
) -> None:
    await start(server, "flow", "e1", "e2")
    first, second = await poll_all(stub, 2)
    bad_json = success(second, output="{not json")
    malformed = worker_pb2.CompleteTaskRequest(
        task_token="garbage", worker_id="w1", success=worker_pb2.Success(output_json="1")
    )
    too_long = success(first)
    too_long.worker_id = "w" * 10_000

    reply = await stub.CompleteTasks(
        worker_pb2.CompleteTasksRequest(reports=[malformed, success(first), bad_json, too_long])
    )

    codes = [grpc.StatusCode.INVALID_ARGUMENT.value[0]] * 2
    assert reply.results[0].error.code == codes[0] and "malformed task_token" in reply.results[0].error.message
    assert reply.results[1].reply.disposition == worker_pb2.CompleteTaskResponse.ACCEPTED
    assert reply.results[1].reply.next_task.step == "b"
    assert reply.results[2].error.code == codes[1] and "output of step 'a'" in reply.results[2].error.message
    assert reply.results[3].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "worker_id" in reply.results[3].error.message
    assert (await server.engine.state_of("e1")).steps["a"].phase.value == "Succeeded"
    assert (await server.engine.state_of("e2")).steps["a"].phase.value == "Running"  # its report was refused


async def test_more_reports_than_the_limit_are_refused_naming_it(stub: worker_pb2_grpc.WorkerServiceStub) -> None:
    report = worker_pb2.CompleteTaskRequest(task_token="t", worker_id="w1", success=worker_pb2.Success(output_json="1"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CompleteTasks(worker_pb2.CompleteTasksRequest(reports=[report] * (MAX_REPORTS_PER_CALL + 1)))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"limit of {MAX_REPORTS_PER_CALL} reports" in (refused.value.details() or "")


async def test_a_next_task_that_does_not_fit_the_reply_is_kept_for_the_worker_s_next_poll(
    server: EngineServer, stub: worker_pb2_grpc.WorkerServiceStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    await start(server, "flow", "e1")
    (first,) = await poll_all(stub, 1)
    limit = message_limit(server.config.max_payload_bytes)
    monkeypatch.setattr(worker_service, "_REPLY_MARGIN", limit - 8)  # room for a disposition, not a task

    reply = await stub.CompleteTasks(worker_pb2.CompleteTasksRequest(reports=[success(first)]))

    assert reply.results[0].reply.disposition == worker_pb2.CompleteTaskResponse.ACCEPTED
    assert not reply.results[0].reply.HasField("next_task")
    (kept,) = await poll_all(stub, 1)
    assert kept.step == "b" and kept.execution_id == "e1"


class TableAuthenticator:
    async def authenticate(self, token: str) -> Identity:
        if token not in ("token-a", "token-b"):
            raise Unauthenticated("token refused")
        return Identity(f"system:serviceaccount:team-{token[-1]}:worker")


async def test_each_report_is_authorised_on_its_own_and_the_call_needs_a_token(tmp_path: Path) -> None:
    policy = AccessPolicy.from_document(
        {"workers": [{"subjects": ["system:serviceaccount:*"], "namespaces": ["$self"], "queues": ["jobs"]}]}
    )
    server = await serve(tmp_path, Guard(TableAuthenticator(), policy=policy))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated
            await start(server, "team-a/flow", "ea")
            await start(server, "team-b/flow", "eb")
            (task_a,) = await poll_all(stub, 1, authorization="Bearer token-a")
            (task_b,) = await poll_all(stub, 1, authorization="Bearer token-b")
            batch = worker_pb2.CompleteTasksRequest(reports=[success(task_a), success(task_b)])

            with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
                await stub.CompleteTasks(batch)
            reply = await stub.CompleteTasks(batch, metadata=(("authorization", "Bearer token-a"),))

        assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert reply.results[0].reply.disposition == worker_pb2.CompleteTaskResponse.ACCEPTED
        assert reply.results[0].reply.next_task.execution_id == "ea"
        assert reply.results[1].error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
        assert "'team-b'" in reply.results[1].error.message
        assert (await server.engine.state_of("eb")).steps["a"].phase.value == "Running"
    finally:
        await server.stop(0)


async def test_on_a_work_stream_a_report_may_ask_for_its_next_task_by_the_steps_the_stream_polled_with(
    server: EngineServer, stub: worker_pb2_grpc.WorkerServiceStub
) -> None:
    await start(server, "flow", "e1", "e2")
    by_stream = worker_pb2.PollTaskRequest(worker_id="w1", task_queue="jobs", stream_steps=True)
    stream = stub.Work()
    await stream.write(worker_pb2.WorkCall(id=1, poll_task=NEXT))  # the stream's poll: its steps are kept
    polled = await stream.read()
    assert polled.id == 1 and polled.poll_task.task.step == "a"
    report = success(polled.poll_task.task, poll_next=False)
    report.poll_next.CopyFrom(by_stream)
    await stream.write(worker_pb2.WorkCall(id=2, complete_tasks=worker_pb2.CompleteTasksRequest(reports=[report])))
    answer = await stream.read()
    (result,) = answer.complete_tasks.results
    assert result.reply.disposition == worker_pb2.CompleteTaskResponse.ACCEPTED
    assert result.reply.next_task.step == "b", "the steps of the stream's poll stood in for the report's"

    # A unary call has no stream: asking so stands by for nothing, and the outcome still counts.
    (other,) = await poll_all(stub, 1)
    unary = success(other, poll_next=False)
    unary.poll_next.CopyFrom(by_stream)
    reply = await stub.CompleteTasks(worker_pb2.CompleteTasksRequest(reports=[unary]))
    assert reply.results[0].reply.disposition == worker_pb2.CompleteTaskResponse.ACCEPTED
    assert not reply.results[0].reply.HasField("next_task")
    stream.cancel()
