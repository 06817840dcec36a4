"""The worker's reporter: a report goes at once while fewer calls than its bound are in flight; those that
become ready while that many are go together in the next call; each gets its own result; an engine without CompleteTasks gets
CompleteTask per report. Driven by fake calls that the test answers: no sleeps, no network."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest

from cerebelum.completion import Completer, Reporter
from cerebelum.v1 import worker_pb2
from tests.support.waiting import eventually

ACCEPTED = worker_pb2.CompleteTaskResponse.ACCEPTED
pytestmark = pytest.mark.timeout(30)


def report(token: str, output: str = "1") -> worker_pb2.CompleteTaskRequest:
    return worker_pb2.CompleteTaskRequest(
        task_token=token, worker_id="w", success=worker_pb2.Success(output_json=output)
    )


def error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


class Calls:
    """A fake RPC: records each request; each call waits until the test answers it."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.answers: list[asyncio.Future[Any]] = []
        self.arrived = asyncio.Event()

    async def __call__(self, request: Any, *, timeout: float | None = None) -> Any:
        self.requests.append(request)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.answers.append(answer)
        self.arrived.set()
        return await answer

    async def wait_for(self, count: int) -> None:
        while len(self.requests) < count:
            self.arrived.clear()
            await self.arrived.wait()


def tokens(request: worker_pb2.CompleteTasksRequest) -> list[str]:
    return [r.task_token for r in request.reports]


def batch_reply(*results: worker_pb2.CompleteTaskResult) -> worker_pb2.CompleteTasksResponse:
    return worker_pb2.CompleteTasksResponse(results=list(results))


def ok(next_step: str = "") -> worker_pb2.CompleteTaskResult:
    reply = worker_pb2.CompleteTaskResponse(disposition=ACCEPTED)
    if next_step:
        reply.next_task.step = next_step
    return worker_pb2.CompleteTaskResult(reply=reply)


def failed(code: grpc.StatusCode, message: str) -> worker_pb2.CompleteTaskResult:
    return worker_pb2.CompleteTaskResult(error=worker_pb2.ReportError(code=code.value[0], message=message))


async def one_in_flight(
    *, max_calls: int, token: str = "t1", **bounds: int
) -> tuple[Calls, Calls, Reporter, asyncio.Future[worker_pb2.CompleteTaskResponse]]:
    """Fake batch and single calls, a reporter on them, and its first report's call in flight, unanswered."""
    batch, single = Calls(), Calls()
    reporter = Reporter(batch, single, max_calls=max_calls, **bounds)  # type: ignore[arg-type]  # fakes of the stubs
    first = asyncio.ensure_future(reporter.send(report(token)))
    await batch.wait_for(1)
    return batch, single, reporter, first


async def test_a_report_goes_at_once_alone_and_those_ready_meanwhile_go_together_next() -> None:
    batch, single, reporter, first = await one_in_flight(max_calls=1)
    later = [asyncio.ensure_future(reporter.send(report(f"t{i}"))) for i in (2, 3, 4)]
    await eventually(lambda: reporter.waiting == 3, what="three reports queued behind the call in flight")
    assert len(batch.requests) == 1 and tokens(batch.requests[0]) == ["t1"]

    batch.answers[0].set_result(batch_reply(ok("b")))
    assert (await first).next_task.step == "b"
    await batch.wait_for(2)
    assert tokens(batch.requests[1]) == ["t2", "t3", "t4"]
    batch.answers[1].set_result(batch_reply(ok(), ok("c"), ok()))
    replies = await asyncio.gather(*later)
    assert [r.next_task.step for r in replies] == ["", "c", ""]
    assert not single.requests


async def test_reports_go_at_once_up_to_the_calls_in_flight_bound_and_the_rest_wait_for_the_first_to_end() -> None:
    batch, _single, reporter, first = await one_in_flight(max_calls=2)
    second = asyncio.ensure_future(reporter.send(report("t2")))
    await batch.wait_for(2)  # a second call while the first is in flight
    later = [asyncio.ensure_future(reporter.send(report(f"t{i}"))) for i in (3, 4)]
    await eventually(lambda: reporter.waiting == 2, what="two reports queued behind two calls in flight")
    assert [tokens(r) for r in batch.requests] == [["t1"], ["t2"]] and reporter.calls_in_flight == 2

    batch.answers[1].set_result(batch_reply(ok("b")))
    assert (await second).next_task.step == "b"
    await batch.wait_for(3)
    assert tokens(batch.requests[2]) == ["t3", "t4"]
    batch.answers[2].set_result(batch_reply(ok(), ok()))
    batch.answers[0].set_result(batch_reply(ok()))
    await asyncio.gather(first, *later)
    await eventually(lambda: reporter.calls_in_flight == 0, what="no call left in flight")


async def test_a_report_queued_as_the_last_call_ends_is_still_sent() -> None:
    batch, single = Calls(), Calls()
    reporter = Reporter(batch, single, max_calls=1)  # type: ignore[arg-type]  # fakes of the stubs

    async def two_in_a_row() -> worker_pb2.CompleteTaskResponse:
        await reporter.send(report("t1"))
        # Woken by the reply, before the call's task has ended: the next report is queued at once.
        return await reporter.send(report("t2"))

    sending = asyncio.ensure_future(two_in_a_row())
    await batch.wait_for(1)
    batch.answers[0].set_result(batch_reply(ok()))
    await batch.wait_for(2)
    batch.answers[1].set_result(batch_reply(ok()))
    assert (await sending).disposition == ACCEPTED


async def test_each_report_gets_its_own_error_and_the_completer_replaces_only_that_one() -> None:
    batch, single = Calls(), Calls()
    completer = Completer(Reporter(batch, single, max_calls=1))  # type: ignore[arg-type]  # fakes of the stubs
    good = asyncio.ensure_future(completer.submit(report("good")))
    await batch.wait_for(1)
    batch.answers[0].set_result(batch_reply(ok()))
    assert (await good) is not None

    both = [asyncio.ensure_future(completer.submit(report(t))) for t in ("big", "fine")]
    await batch.wait_for(2)
    assert tokens(batch.requests[1]) == ["big", "fine"]
    batch.answers[1].set_result(
        batch_reply(failed(grpc.StatusCode.RESOURCE_EXHAUSTED, "output over the 2 MiB limit"), ok())
    )
    await batch.wait_for(3)  # the big one, replaced by a failure, goes again on its own
    replacement = batch.requests[2].reports[0]
    assert replacement.task_token == "big" and replacement.failure.type == "PayloadTooLarge"
    assert "2 MiB" in replacement.failure.message
    batch.answers[2].set_result(batch_reply(ok()))
    assert all(reply is not None for reply in await asyncio.gather(*both))


async def test_an_engine_without_complete_tasks_gets_complete_task_for_each_report_from_then_on() -> None:
    batch, single, reporter, first = await one_in_flight(max_calls=1)
    queued = asyncio.ensure_future(reporter.send(report("t2")))
    await eventually(lambda: reporter.waiting == 1, what="t2 queued")
    batch.answers[0].set_exception(error(grpc.StatusCode.UNIMPLEMENTED, "Method not found!"))

    await single.wait_for(2)
    assert [r.task_token for r in single.requests] == ["t1", "t2"]
    for answer in single.answers:
        answer.set_result(worker_pb2.CompleteTaskResponse(disposition=ACCEPTED))
    assert (await first).disposition == ACCEPTED and (await queued).disposition == ACCEPTED
    assert not reporter.batched

    later = asyncio.ensure_future(reporter.send(report("t3")))
    await single.wait_for(3)
    single.answers[2].set_result(worker_pb2.CompleteTaskResponse(disposition=ACCEPTED))
    await later
    assert len(batch.requests) == 1, "never asked again"


async def test_calls_in_flight_that_all_hear_unimplemented_say_so_once_and_each_report_goes_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch, single = Calls(), Calls()
    reporter = Reporter(batch, single, max_calls=2)  # type: ignore[arg-type]  # fakes of the stubs
    sent = [asyncio.ensure_future(reporter.send(report("t1")))]
    await batch.wait_for(1)
    sent.append(asyncio.ensure_future(reporter.send(report("t2"))))
    await batch.wait_for(2)
    with caplog.at_level(logging.INFO, logger="cerebelum.worker"):
        for answer in batch.answers:
            answer.set_exception(error(grpc.StatusCode.UNIMPLEMENTED, "Method not found!"))
        await single.wait_for(2)
    for answer in single.answers:
        answer.set_result(worker_pb2.CompleteTaskResponse(disposition=ACCEPTED))
    assert [reply.disposition for reply in await asyncio.gather(*sent)] == [ACCEPTED, ACCEPTED]
    assert sorted(r.task_token for r in single.requests) == ["t1", "t2"]
    assert sum("has no CompleteTasks" in r.getMessage() for r in caplog.records) == 1


async def test_a_whole_call_refused_as_too_large_sends_its_reports_one_by_one() -> None:
    batch, single, reporter, first = await one_in_flight(max_calls=1)
    pair = [asyncio.ensure_future(reporter.send(report(t))) for t in ("t2", "t3")]
    await eventually(lambda: reporter.waiting == 2, what="the pair queued")
    batch.answers[0].set_result(batch_reply(ok()))
    await first
    await batch.wait_for(2)
    batch.answers[1].set_exception(error(grpc.StatusCode.RESOURCE_EXHAUSTED, "message larger than max"))

    await single.wait_for(2)
    assert sorted(r.task_token for r in single.requests) == ["t2", "t3"]
    for answer in single.answers:
        answer.set_result(worker_pb2.CompleteTaskResponse(disposition=ACCEPTED))
    await asyncio.gather(*pair)
    assert reporter.batched, "a refusal of one call's size says nothing of the engine's version"


async def test_a_transient_failure_of_the_call_reaches_every_report_in_it() -> None:
    batch, _single, _reporter, sent = await one_in_flight(max_calls=1)
    batch.answers[0].set_exception(error(grpc.StatusCode.UNAVAILABLE, "connection reset"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await sent
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE  # the Completer retries it, with backoff


async def test_a_call_carries_at_most_its_bounds_of_reports_and_bytes() -> None:
    batch, _single, reporter, first = await one_in_flight(max_calls=1, max_reports=2, max_bytes=200, token="t0")
    rest = [asyncio.ensure_future(reporter.send(report(t))) for t in ("t1", "t2", "t3")]
    rest.append(asyncio.ensure_future(reporter.send(report("huge", '"' + "x" * 500 + '"'))))
    rest.append(asyncio.ensure_future(reporter.send(report("t5"))))
    await eventually(lambda: reporter.waiting == 5, what="five reports queued")
    seen = []
    for answered, count in enumerate((1, 2, 1, 1, 1), start=1):
        batch.answers[answered - 1].set_result(batch_reply(*[ok()] * count))
        if answered < 5:
            await batch.wait_for(answered + 1)
            seen.append(tokens(batch.requests[answered]))
    await asyncio.gather(first, *rest)
    assert seen == [["t1", "t2"], ["t3"], ["huge"], ["t5"]]  # the huge one alone: over the bytes with any other


async def test_a_report_whose_caller_gave_up_before_it_went_is_not_sent() -> None:
    batch, _single, reporter, first = await one_in_flight(max_calls=1)
    abandoned = asyncio.ensure_future(reporter.send(report("gone")))
    kept = asyncio.ensure_future(reporter.send(report("kept")))
    await eventually(lambda: reporter.waiting == 2, what="both queued")
    abandoned.cancel()
    batch.answers[0].set_result(batch_reply(ok()))
    await first
    await batch.wait_for(2)
    assert tokens(batch.requests[1]) == ["kept"]
    batch.answers[1].set_result(batch_reply(ok()))
    await kept


async def test_an_unexpected_error_of_a_call_reaches_its_reports_and_the_next_reports_still_go() -> None:
    batch, _single, reporter, first = await one_in_flight(max_calls=1)
    after = asyncio.ensure_future(reporter.send(report("t2")))
    await eventually(lambda: reporter.waiting == 1, what="t2 queued")
    batch.answers[0].set_exception(RuntimeError("the channel is closed"))
    with pytest.raises(RuntimeError, match="channel is closed"):
        await first
    await batch.wait_for(2)
    assert tokens(batch.requests[1]) == ["t2"]
    batch.answers[1].set_result(batch_reply(ok()))
    assert (await after).disposition == ACCEPTED
