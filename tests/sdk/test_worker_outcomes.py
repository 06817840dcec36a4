"""What a step's exceptions and returned outcomes turn into on the wire."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from cerebelum import ApplicationError, NonRetryableError, StepContext, Worker

from .fakes import FakeWorkerService, make_task, running


def make_worker(service: FakeWorkerService) -> Worker:
    return Worker("q", address=service.address, poll_wait=0.5)


async def test_an_exception_becomes_a_retryable_failure_typed_by_its_class(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def explode() -> None:
        raise KeyError("no such customer")

    async with running(worker):
        done = await worker_service.run_task(make_task("explode"))

    failure = done.failure
    assert (failure.type, failure.message, failure.non_retryable) == ("KeyError", "'no such customer'", False)
    assert "Traceback" in failure.stacktrace
    assert "in explode" in failure.stacktrace


async def test_a_sync_step_exception_is_reported_the_same_way(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def explode() -> None:
        raise ValueError("bad value")

    async with running(worker):
        done = await worker_service.run_task(make_task("explode"))

    assert (done.failure.type, done.failure.message, done.failure.non_retryable) == ("ValueError", "bad value", False)


async def test_an_application_error_chooses_the_type_and_retryability(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def typed() -> None:
        raise ApplicationError("card declined", type="CardDeclined", non_retryable=True)

    @worker.step()
    async def plain() -> None:
        raise ApplicationError("try again")

    @worker.step()
    async def never() -> None:
        raise NonRetryableError("gone for good")

    async with running(worker):
        typed_done = await worker_service.run_task(make_task("typed"))
        plain_done = await worker_service.run_task(make_task("plain"))
        never_done = await worker_service.run_task(make_task("never"))

    assert (typed_done.failure.type, typed_done.failure.message, typed_done.failure.non_retryable) == (
        "CardDeclined",
        "card declined",
        True,
    )
    assert (plain_done.failure.type, plain_done.failure.non_retryable) == ("ApplicationError", False)
    assert (never_done.failure.type, never_done.failure.non_retryable) == ("NonRetryableError", True)


async def test_a_result_that_is_not_json_fails_the_attempt_for_good(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def opaque() -> Any:
        return object()

    async with running(worker):
        done = await worker_service.run_task(make_task("opaque"))

    assert (done.failure.type, done.failure.non_retryable) == ("InvalidOutput", True)


async def test_retry_after_asks_to_run_the_step_again_in_milliseconds(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def poll_job(ctx: StepContext) -> Any:
        return ctx.retry_after(2.5)

    async with running(worker):
        done = await worker_service.run_task(make_task("poll_job"))

    assert done.WhichOneof("outcome") == "retry_after"
    assert done.retry_after.delay_ms == 2500


async def test_sleep_reports_the_result_and_the_duration_in_milliseconds(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def remind(ctx: StepContext) -> Any:
        return ctx.sleep("1h30m", result={"reminded": True})

    @worker.step()
    async def pause(ctx: StepContext) -> Any:
        return ctx.sleep(timedelta(seconds=3))

    async with running(worker):
        remind_done = await worker_service.run_task(make_task("remind"))
        pause_done = await worker_service.run_task(make_task("pause"))

    assert remind_done.WhichOneof("outcome") == "sleep"
    assert remind_done.sleep.duration_ms == 90 * 60 * 1000
    assert json.loads(remind_done.sleep.output_json) == {"reminded": True}
    assert pause_done.sleep.duration_ms == 3000
    assert json.loads(pause_done.sleep.output_json) is None


async def test_request_approval_reports_kind_timeout_and_data(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def refund(ctx: StepContext) -> Any:
        return ctx.request_approval(kind="refund", timeout="2d", data={"amount": 120})

    @worker.step()
    async def review(ctx: StepContext) -> Any:
        return ctx.request_approval()

    async with running(worker):
        refund_done = await worker_service.run_task(make_task("refund"))
        review_done = await worker_service.run_task(make_task("review"))

    approval = refund_done.approval
    assert (approval.kind, approval.timeout_ms) == ("refund", 2 * 86_400_000)
    assert json.loads(approval.data_json) == {"amount": 120}
    assert (review_done.approval.kind, review_done.approval.timeout_ms) == ("approval", 0)
    assert json.loads(review_done.approval.data_json) is None
