"""The worker keeps going through outages, limits its concurrency and drains on shutdown."""

from __future__ import annotations

import asyncio
import json
import logging

import grpc
import pytest

from cerebelum import Worker
from tests.support.waiting import eventually

from .fakes import FakeWorkerService, free_port, make_task, running, serve_worker_service


def make_worker(service: FakeWorkerService, *, max_concurrency: int = 10, drain_timeout: float = 30.0) -> Worker:
    return Worker(
        "q", address=service.address, poll_wait=0.5, max_concurrency=max_concurrency, drain_timeout=drain_timeout
    )


async def test_a_completion_is_sent_again_until_the_server_takes_it(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)
    worker_service.complete_errors = [
        (grpc.StatusCode.UNAVAILABLE, "restarting"),
        (grpc.StatusCode.UNAVAILABLE, "restarting"),
    ]

    @worker.step()
    async def once() -> int:
        return 1

    async with running(worker):
        done = await worker_service.run_task(make_task("once"))

    assert json.loads(done.success.output_json) == 1
    assert worker_service.complete_attempts == 3
    assert len(worker_service.completions) == 1


@pytest.mark.parametrize(
    ("code", "failure_type"),
    [(grpc.StatusCode.RESOURCE_EXHAUSTED, "PayloadTooLarge"), (grpc.StatusCode.INVALID_ARGUMENT, "InvalidOutput")],
)
async def test_an_output_the_server_refuses_is_reported_as_a_final_failure(
    worker_service: FakeWorkerService, code: grpc.StatusCode, failure_type: str
) -> None:
    worker = make_worker(worker_service)
    worker_service.reject_success = (code, "output_json is 9 MB, the limit is 4 MB")

    @worker.step()
    async def big() -> str:
        return "x" * 1000

    async with running(worker):
        done = await worker_service.run_task(make_task("big"))

    assert done.WhichOneof("outcome") == "failure"
    assert (done.failure.type, done.failure.non_retryable) == (failure_type, True)
    assert done.failure.message == "output_json is 9 MB, the limit is 4 MB"


async def test_the_worker_waits_out_a_server_that_starts_after_it(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    worker = Worker("q", address=f"127.0.0.1:{port}", poll_wait=0.5)

    @worker.step()
    async def hello(input: str) -> str:
        return f"hello {input}"

    with caplog.at_level(logging.INFO, logger="cerebelum.worker"):
        async with running(worker):
            await asyncio.sleep(0.5)  # several failed polls
            async with serve_worker_service(FakeWorkerService(), port) as service:
                done = await service.run_task(make_task("hello", input="again"), timeout=15)
                # The service may record the result before the worker reads its acknowledgement;
                # stop the worker while the server is still there to acknowledge a re-submission.
                async with asyncio.timeout(15):
                    await worker.shutdown()
                messages = [(r.levelno, r.getMessage()) for r in caplog.records]

    assert json.loads(done.success.output_json) == "hello again"
    assert len([m for level, m in messages if level == logging.WARNING and "cannot poll" in m]) == 1
    assert any("polling q again" in m for _, m in messages)


async def test_no_more_steps_run_at_once_than_max_concurrency(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service, max_concurrency=2)
    gate = asyncio.Event()
    active = 0
    peak = 0

    @worker.step()
    async def blocked() -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await gate.wait()
        active -= 1

    async with running(worker):
        for n in range(5):
            await worker_service.tasks.put(make_task("blocked", token=f"t{n}"))
        await eventually(lambda: active == 2)
        polls_when_full = len(worker_service.polls)
        await asyncio.sleep(0.3)
        assert worker_service.tasks.qsize() == 3  # nothing more was taken
        assert len(worker_service.polls) == polls_when_full  # and no poll was made
        gate.set()
        await eventually(lambda: len(worker_service.completions) == 5)

    assert peak == 2


async def test_shutdown_lets_a_running_step_finish_and_report(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)
    started = asyncio.Event()

    @worker.step()
    async def finishing() -> str:
        started.set()
        await asyncio.sleep(0.3)
        return "finished"

    task = asyncio.create_task(worker.run_async())
    await worker_service.tasks.put(make_task("finishing", token="first"))
    async with asyncio.timeout(30):
        await started.wait()
        # The worker has spare capacity, so every poller polls again while the step runs; let
        # those polls arrive before taking the count, or a slow machine races the snapshot.
        pollers = min(worker.max_pollers, worker.max_concurrency)
        await eventually(lambda: len(worker_service.polls) >= pollers + 1, what="the pollers polling again")
    polls_before_shutdown = len(worker_service.polls)
    async with asyncio.timeout(10):
        await worker.shutdown()
        await task

    assert [c.task_token for c in worker_service.completions] == ["first"]
    assert json.loads(worker_service.completions[0].success.output_json) == "finished"
    assert len(worker_service.polls) == polls_before_shutdown  # polling stopped at once


async def test_steps_still_running_after_the_drain_timeout_are_reported_as_retryable_failures(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service, drain_timeout=0.2)
    started = asyncio.Event()

    @worker.step()
    async def endless() -> None:
        started.set()
        await asyncio.sleep(30)

    async with running(worker):
        await worker_service.tasks.put(make_task("endless"))
        async with asyncio.timeout(5):
            await started.wait()

    (done,) = worker_service.completions
    assert (done.failure.type, done.failure.non_retryable) == ("WorkerShutdown", False)


async def test_cancelling_run_async_stops_the_worker_at_once(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)
    started = asyncio.Event()

    @worker.step()
    async def endless() -> None:
        started.set()
        await asyncio.sleep(30)

    task = asyncio.create_task(worker.run_async())
    await worker_service.tasks.put(make_task("endless"))
    async with asyncio.timeout(5):
        await started.wait()
    task.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task

    assert worker.active_steps == 0
    assert [c.failure.type for c in worker_service.completions] == ["WorkerShutdown"]


async def test_the_token_is_sent_as_a_bearer_authorization(
    worker_service: FakeWorkerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CEREBELUM_TOKEN", "s3cret")
    monkeypatch.setenv("CEREBELUM_ADDRESS", worker_service.address)
    worker = Worker("q", poll_wait=0.5)
    assert worker.address == worker_service.address

    @worker.step()
    async def noop() -> None: ...

    async with running(worker):
        await worker_service.run_task(make_task("noop"))

    assert worker_service.poll_metadata[0]["authorization"] == "Bearer s3cret"


@pytest.mark.parametrize(("max_pollers", "max_concurrency", "in_flight"), [(3, 10, 3), (4, 2, 2), (1, 10, 1)])
async def test_an_idle_worker_keeps_max_pollers_polls_in_flight_but_never_more_than_its_free_slots(
    worker_service: FakeWorkerService, max_pollers: int, max_concurrency: int, in_flight: int
) -> None:
    worker = Worker(
        "q", address=worker_service.address, poll_wait=5, max_pollers=max_pollers, max_concurrency=max_concurrency
    )

    @worker.step()
    async def idle() -> None:
        return None

    async with running(worker):
        await eventually(lambda: len(worker_service.polls) >= in_flight, what=f"{in_flight} polls")
        await asyncio.sleep(0.3)  # no further poll arrives while these are held (poll_wait is 5 s)
        assert len(worker_service.polls) == in_flight


def test_max_pollers_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="max_pollers must be at least 1"):
        Worker("q", max_pollers=0)


async def test_each_new_reason_of_an_outage_is_logged_once_and_identical_repeats_are_not(
    worker_service: FakeWorkerService, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker("q", address=worker_service.address, poll_wait=0.5, max_pollers=1)
    worker_service.poll_errors = [
        *[(grpc.StatusCode.UNAVAILABLE, "engine restarting")] * 3,
        *[(grpc.StatusCode.UNAUTHENTICATED, "a token is required")] * 3,
    ]

    @worker.step()
    async def noop() -> None: ...

    with caplog.at_level(logging.INFO, logger="cerebelum.worker"):
        async with running(worker):
            await worker_service.run_task(make_task("noop"), timeout=15)
        messages = [(r.levelno, r.getMessage()) for r in caplog.records]

    warnings = [m for level, m in messages if level == logging.WARNING and "cannot poll" in m]
    assert len(warnings) == 2, warnings
    assert "UNAVAILABLE: engine restarting" in warnings[0]
    assert "UNAUTHENTICATED: a token is required" in warnings[1]
    assert len([m for _, m in messages if "polling q again" in m]) == 1
