"""The Work stream: polls and reports carried on one stream, each handled and answered as its unary RPC.

Both ends are the real ones (server/work_stream.py through `strict_service_handler`, and the SDK's
`WorkStream`) over a real gRPC connection on 127.0.0.1; only the servicer behind them is a fake.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from cerebelum.stubs import worker_rpcs
from cerebelum.v1 import worker_pb2, worker_pb2_grpc
from cerebelum.work_stream import WorkStream
from cerebelum_operator.server.handlers import strict_service_handler
from tests.sdk.fakes import free_port
from tests.support.waiting import eventually

WORKER_SERVICE = worker_pb2.DESCRIPTOR.services_by_name["WorkerService"]
WORK = "/cerebelum.v1.WorkerService/Work"


class Servicer(worker_pb2_grpc.WorkerServiceServicer):
    """PollTask waits for `release` (or answers `poll_error`); CompleteTasks answers at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.polls_started = 0
        self.polls_cancelled = 0
        self.poll_error: tuple[grpc.StatusCode, str] | None = None
        self.reports: list[str] = []
        self.poll_nexts: list[worker_pb2.PollTaskRequest] = []  # each report's, as it arrived
        self.tokens: list[str] = []  # the authorization each CompleteTasks call carried
        self.padding = 0  # bytes of a next task in each CompleteTasks reply

    async def PollTask(self, request: worker_pb2.PollTaskRequest, context: Any) -> worker_pb2.PollTaskResponse:
        self.polls_started += 1
        if self.poll_error is not None:
            await context.abort(*self.poll_error)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.polls_cancelled += 1
            raise
        return worker_pb2.PollTaskResponse(task=worker_pb2.Task(task_token=f"task-for-{request.worker_id}"))

    async def CompleteTasks(
        self, request: worker_pb2.CompleteTasksRequest, context: Any
    ) -> worker_pb2.CompleteTasksResponse:
        self.tokens += [value for key, value in context.invocation_metadata() if key == "authorization"]
        response = worker_pb2.CompleteTasksResponse()
        for report in request.reports:
            self.reports.append(report.task_token)
            self.poll_nexts.append(report.poll_next)
            reply = response.results.add().reply
            reply.SetInParent()
            if self.padding:
                reply.next_task.arguments_json = "x" * self.padding
        return response


@asynccontextmanager
async def engine(servicer: Servicer, *, port: int = 0, max_calls: int = 1_000, work: bool = True) -> AsyncIterator[str]:
    """A gRPC server of `servicer` (without a Work method when not `work`); yields its address."""
    server = grpc.aio.server()
    handler = strict_service_handler(servicer, WORKER_SERVICE, max_calls_per_stream=max_calls)
    if not work:  # as an engine that predates Work: its unary methods only
        handler = grpc.method_handlers_generic_handler(
            "cerebelum.v1.WorkerService",
            {
                name: grpc.unary_unary_rpc_method_handler(
                    getattr(servicer, name),
                    request_deserializer=getattr(worker_pb2, f"{name}Request").FromString,
                    response_serializer=getattr(worker_pb2, f"{name}Response").SerializeToString,
                )
                for name in ("PollTask", "CompleteTasks")
            },
        )
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield f"127.0.0.1:{bound}"
    finally:
        await server.stop(None)


def call(id: int, **kind: Any) -> bytes:
    return worker_pb2.WorkCall(id=id, **kind).SerializeToString()


def poll(worker: str = "w") -> dict[str, Any]:
    return {"poll_task": worker_pb2.PollTaskRequest(worker_id=worker, task_queue="q", steps=["s"])}


def reports(*tokens: str) -> dict[str, Any]:
    return {
        "complete_tasks": worker_pb2.CompleteTasksRequest(
            reports=[worker_pb2.CompleteTaskRequest(task_token=token) for token in tokens]
        )
    }


async def answers(raw_stream: Any, count: int) -> list[worker_pb2.WorkAnswer]:
    return [worker_pb2.WorkAnswer.FromString(await raw_stream.read()) for _ in range(count)]


@asynccontextmanager
async def raw_stream(address: str) -> AsyncIterator[Any]:
    """A Work stream whose messages are bytes, so a test can send what no SDK would. Its receive
    window stays HTTP/2's first 64 KiB (no BDP probing), so what it does not read stays unsent."""
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.http2.bdp_probe", 0), ("grpc.max_receive_message_length", 8 << 20)]
    ) as channel:
        stream = channel.stream_stream(WORK, request_serializer=None, response_deserializer=None)(None)
        try:
            yield stream
        finally:
            stream.cancel()


async def test_each_call_is_answered_under_its_id_as_it_ends_not_in_the_order_sent() -> None:
    servicer = Servicer()
    async with engine(servicer) as address, raw_stream(address) as stream:
        await stream.write(call(7, **poll()))
        await stream.write(call(8, **reports("a", "b")))
        [first] = await answers(stream, 1)
        assert first.id == 8
        assert len(first.complete_tasks.results) == 2
        assert servicer.reports == ["a", "b"]
        servicer.release.set()
        [second] = await answers(stream, 1)
        assert second.id == 7
        assert second.poll_task.task.task_token == "task-for-w"


async def test_an_abort_ends_only_its_own_call_and_the_stream_goes_on() -> None:
    servicer = Servicer()
    servicer.poll_error = (grpc.StatusCode.PERMISSION_DENIED, "not your queue")
    async with engine(servicer) as address, raw_stream(address) as stream:
        await stream.write(call(1, **poll()))
        [refused] = await answers(stream, 1)
        assert (refused.id, refused.error.code, refused.error.message) == (
            1,
            grpc.StatusCode.PERMISSION_DENIED.value[0],
            "not your queue",
        )
        await stream.write(call(2, **reports("x")))
        [accepted] = await answers(stream, 1)
        assert accepted.id == 2
        assert accepted.HasField("complete_tasks")


async def test_a_cancelled_call_is_stopped_and_never_answered() -> None:
    servicer = Servicer()
    async with engine(servicer) as address, raw_stream(address) as stream:
        await stream.write(call(1, **poll()))
        await eventually(lambda: servicer.polls_started == 1, what="the poll started")
        await stream.write(call(1, cancel=True))
        await eventually(lambda: servicer.polls_cancelled == 1, what="the poll was cancelled")
        await stream.write(call(2, **reports("x")))
        [answer] = await answers(stream, 1)
        assert answer.id == 2  # nothing came for call 1


async def test_a_call_past_its_timeout_is_stopped_and_answered_deadline_exceeded() -> None:
    servicer = Servicer()
    async with engine(servicer) as address, raw_stream(address) as stream:
        await stream.write(call(1, timeout_ms=50, **poll()))
        [answer] = await answers(stream, 1)
        assert (answer.id, answer.error.code) == (1, grpc.StatusCode.DEADLINE_EXCEEDED.value[0])
        assert servicer.polls_cancelled == 1


async def test_a_stream_runs_at_most_its_limit_of_calls_at_once_and_reads_on_as_they_end() -> None:
    servicer = Servicer()
    async with engine(servicer, max_calls=2) as address, raw_stream(address) as stream:
        for id in (1, 2, 3):
            await stream.write(call(id, **poll()))
        await eventually(lambda: servicer.polls_started == 2, what="two polls started")
        for _ in range(20):  # loop turns, not time: the server runs on this loop, and holds the third
            await asyncio.sleep(0)
        assert servicer.polls_started == 2
        servicer.release.set()
        got = await answers(stream, 3)
        assert sorted(answer.id for answer in got) == [1, 2, 3]
        assert servicer.polls_started == 3


async def test_a_worker_that_sends_without_reading_its_answers_holds_at_most_the_limit() -> None:
    servicer = Servicer()
    servicer.padding = 1_000_000  # answers far past HTTP/2's window: unread, they stay with the engine
    async with engine(servicer, max_calls=2) as address, raw_stream(address) as stream:
        for id in range(1, 6):
            await stream.write(call(id, **reports(f"r{id}")))
        await eventually(lambda: len(servicer.reports) == 2, what="two calls handled")
        for _ in range(20):  # loop turns, not time: the server runs on this loop, and reads no further
            await asyncio.sleep(0)
        assert servicer.reports == ["r1", "r2"]
        got = await answers(stream, 5)
        assert sorted(answer.id for answer in got) == [1, 2, 3, 4, 5]
        assert servicer.reports == ["r1", "r2", "r3", "r4", "r5"]


async def test_a_call_without_a_kind_or_with_an_id_still_open_is_refused_alone() -> None:
    servicer = Servicer()
    async with engine(servicer) as address, raw_stream(address) as stream:
        await stream.write(call(1, **poll()))
        await stream.write(call(1, **reports("x")))
        await stream.write(call(2))
        got = {answer.id: answer for answer in await answers(stream, 2)}
        assert got[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "still open" in got[1].error.message
        assert got[2].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "no call" in got[2].error.message
        servicer.release.set()
        [polled] = await answers(stream, 1)
        assert polled.poll_task.task.task_token == "task-for-w"


async def test_a_message_that_is_not_a_work_call_ends_the_stream_with_invalid_argument() -> None:
    servicer = Servicer()
    async with engine(servicer) as address, raw_stream(address) as stream:
        await stream.write(b"\xff\xff\xff")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream.read()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid cerebelum.v1.WorkCall" in (refused.value.details() or "")


async def test_when_the_worker_goes_away_its_open_calls_are_cancelled() -> None:
    servicer = Servicer()
    async with engine(servicer) as address:
        async with raw_stream(address) as stream:
            await stream.write(call(1, **poll()))
            await eventually(lambda: servicer.polls_started == 1, what="the poll started")
        await eventually(lambda: servicer.polls_cancelled == 1, what="the poll was cancelled with its stream")


# -- the SDK's end ---------------------------------------------------------------------------------


@asynccontextmanager
async def work_stream(
    address: str, metadata: Callable[[], tuple[tuple[str, str], ...]] = tuple
) -> AsyncIterator[WorkStream]:
    async with grpc.aio.insecure_channel(address) as channel:
        rpcs = worker_rpcs(channel)
        stream = WorkStream(rpcs.work, poll=rpcs.poll, complete_tasks=rpcs.complete_tasks, metadata=metadata)
        try:
            yield stream
        finally:
            await stream.close()


async def test_the_sdk_gets_on_the_stream_the_replies_and_errors_its_unary_calls_would() -> None:
    servicer = Servicer()
    async with engine(servicer) as address, work_stream(address) as stream:
        servicer.release.set()
        polled = await stream.poll(poll("w1")["poll_task"], timeout=10)
        assert polled.task.task_token == "task-for-w1"
        completed = await stream.complete_tasks(reports("t")["complete_tasks"], timeout=10)
        assert len(completed.results) == 1
        servicer.poll_error = (grpc.StatusCode.NOT_FOUND, "no such queue")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream.poll(poll()["poll_task"], timeout=10)
        assert (refused.value.code(), refused.value.details()) == (grpc.StatusCode.NOT_FOUND, "no such queue")
        assert stream.streamed


async def test_the_sdk_makes_unary_calls_to_an_engine_without_the_stream() -> None:
    servicer = Servicer()
    servicer.release.set()
    async with engine(servicer, work=False) as address, work_stream(address) as stream:
        polled = await stream.poll(poll("old")["poll_task"], timeout=10)
        assert polled.task.task_token == "task-for-old"
        assert not stream.streamed
        await stream.complete_tasks(reports("t")["complete_tasks"], timeout=10)
        assert servicer.reports == ["t"]


async def test_a_call_the_sdk_gives_up_is_cancelled_on_the_engine_too() -> None:
    servicer = Servicer()
    async with engine(servicer) as address, work_stream(address) as stream:
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await stream.poll(poll()["poll_task"], timeout=0.2)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await eventually(lambda: servicer.polls_cancelled == 1, what="the engine stopped the poll")
        waiting = asyncio.ensure_future(stream.poll(poll()["poll_task"], timeout=30))
        await eventually(lambda: servicer.polls_started == 2, what="the second poll started")
        waiting.cancel()
        await eventually(lambda: servicer.polls_cancelled == 2, what="the engine stopped the cancelled poll")


async def test_calls_open_when_the_stream_breaks_fail_unavailable_and_the_next_call_opens_another() -> None:
    servicer = Servicer()
    port = free_port()
    async with work_stream(f"127.0.0.1:{port}") as stream:
        async with engine(servicer, port=port) as address:
            assert address.endswith(f":{port}")
            open_call = asyncio.ensure_future(stream.poll(poll()["poll_task"], timeout=30))
            await eventually(lambda: servicer.polls_started == 1, what="the poll started")
        with pytest.raises(grpc.aio.AioRpcError) as broken:
            await open_call
        assert broken.value.code() == grpc.StatusCode.UNAVAILABLE
        servicer.release.set()
        async with engine(servicer, port=port):
            reply = await _retrying(lambda: stream.poll(poll("again")["poll_task"], timeout=10))
            assert reply.task.task_token == "task-for-again"
            assert stream.streamed


async def test_a_renewed_token_opens_a_new_stream_and_the_old_one_ends_once_its_calls_are_answered() -> None:
    servicer = Servicer()
    token = ["first"]
    async with (
        engine(servicer) as address,
        work_stream(address, lambda: (("authorization", f"Bearer {token[0]}"),)) as stream,
    ):
        await stream.complete_tasks(reports("a")["complete_tasks"], timeout=10)
        waiting = asyncio.ensure_future(stream.poll(poll("held")["poll_task"], timeout=30))
        await eventually(lambda: servicer.polls_started == 1, what="the poll started")
        token[0] = "second"
        await stream.complete_tasks(reports("b")["complete_tasks"], timeout=10)
        assert servicer.tokens == ["Bearer first", "Bearer second"]
        assert stream.opened == 2  # the first still holds the poll
        servicer.release.set()
        assert (await waiting).task.task_token == "task-for-held"  # answered on the stream it went on
        await eventually(lambda: stream.opened == 1, what="the old stream ended")


async def _retrying(make: Callable[[], Any]) -> Any:
    """As the worker's pollers do: UNAVAILABLE while the connection comes back is tried again, until
    a call is answered (a condition, bounded by `eventually`)."""
    replies: list[Any] = []

    async def answered() -> bool:
        try:
            replies.append(await make())
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            return False
        return True

    await eventually(answered, what="the engine answered again")
    return replies[-1]


async def test_the_sdk_s_reports_after_a_poll_of_their_queue_ask_by_the_stream_s_steps_not_their_own() -> None:
    servicer = Servicer()
    steps = [f"s{i}" for i in range(200)]

    def report(token: str, queue: str) -> worker_pb2.CompleteTasksRequest:
        sent = worker_pb2.CompleteTaskRequest(task_token=token)
        sent.poll_next.CopyFrom(worker_pb2.PollTaskRequest(worker_id="w", task_queue=queue, steps=steps))
        return worker_pb2.CompleteTasksRequest(reports=[sent])

    async with engine(servicer) as address, work_stream(address) as stream:
        servicer.release.set()
        await stream.complete_tasks(report("before", "q"), timeout=10)  # no poll on this stream yet
        await stream.poll(worker_pb2.PollTaskRequest(worker_id="w", task_queue="q", steps=steps), timeout=10)
        sent = report("after", "q")
        await stream.complete_tasks(sent, timeout=10)
        await stream.complete_tasks(report("elsewhere", "other"), timeout=10)

    before, after, elsewhere = servicer.poll_nexts
    assert list(before.steps) == steps and not before.stream_steps
    assert not after.steps and after.stream_steps and after.task_queue == "q"
    assert list(elsewhere.steps) == steps and not elsewhere.stream_steps, "a queue this stream never polled"
    assert list(sent.reports[0].poll_next.steps) == steps, "the caller's request is left as it was"
