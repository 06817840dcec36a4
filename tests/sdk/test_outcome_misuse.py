"""An outcome built and not returned, or awaited, fails loudly and says how to write it."""

from __future__ import annotations

import pytest

from cerebelum import StepContext, Worker

from .fakes import FakeWorkerService, make_task, running


def make_worker(service: FakeWorkerService) -> Worker:
    return Worker("q", address=service.address, poll_wait=0.5)


async def test_an_outcome_built_without_return_fails_the_step_naming_the_helper(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def forgetful(ctx: StepContext) -> None:
        ctx.sleep("1h")  # the bug: no `return`

    async with running(worker):
        done = await worker_service.run_task(make_task("forgetful"))

    assert done.WhichOneof("outcome") == "failure"
    assert (done.failure.type, done.failure.non_retryable) == ("OutcomeNotReturned", True)
    assert done.failure.message == (
        "step 'forgetful' called ctx.sleep(...) but returned NoneType instead of the outcome: "
        "write `return ctx.sleep(...)` (an outcome only takes effect when the step returns it)"
    )


async def test_a_sync_step_that_builds_retry_after_and_returns_a_value_fails_too(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def polling(ctx: StepContext) -> str:
        ctx.retry_after(30)
        return "not ready"

    async with running(worker):
        done = await worker_service.run_task(make_task("polling"))

    assert done.failure.type == "OutcomeNotReturned"
    assert "called ctx.retry_after(...) but returned str" in done.failure.message


async def test_a_returned_outcome_still_works_when_another_was_built_first(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def chooses(ctx: StepContext) -> object:
        later = ctx.retry_after(30)
        approval = ctx.request_approval(kind="refund")
        return approval if later.delay_ms else later

    async with running(worker):
        done = await worker_service.run_task(make_task("chooses"))

    assert done.WhichOneof("outcome") == "approval"
    assert done.approval.kind == "refund"


@pytest.mark.parametrize(
    ("helper", "build"),
    [
        ("ctx.sleep(...)", lambda ctx: ctx.sleep("1h")),
        ("ctx.retry_after(...)", lambda ctx: ctx.retry_after(5)),
        ("ctx.request_approval(...)", lambda ctx: ctx.request_approval()),
    ],
)
async def test_awaiting_an_outcome_raises_a_type_error_that_says_to_return_it(
    worker_service: FakeWorkerService, helper: str, build: object
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def awaits(ctx: StepContext) -> object:
        return await build(ctx)  # type: ignore[operator]

    async with running(worker):
        done = await worker_service.run_task(make_task("awaits"))

    assert done.failure.type == "TypeError"
    assert done.failure.message == (
        f"{helper} returns an outcome, not a coroutine: write `return {helper}` in the step, do not await it"
    )
