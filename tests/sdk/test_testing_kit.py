"""cerebelum.testing runs a step the way a worker does, without an engine or a protobuf Task."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from cerebelum import ApplicationError, ExecutionOutcome, NonRetryableError, StepCancelled, StepContext
from cerebelum.outcomes import ApprovalRequest, RetryAfter, Sleep
from cerebelum.testing import StepEnvironment, StepResult


class Order(BaseModel):
    id: str
    amount: int


async def charge(input: Order, ctx: StepContext) -> dict[str, Any]:
    return {"order": input.id, "charged": input.amount, "key": ctx.idempotency_key}


def test_a_step_gets_its_input_validated_and_its_output_after_the_json_round_trip() -> None:
    env = StepEnvironment(input={"id": "o-1", "amount": 42}, execution_id="ex-9", attempt=3)

    result = env.run(charge)

    # The key names the run (1 by default), not the attempt: a retry of the same run shares it.
    assert result == StepResult(kind="success", output={"order": "o-1", "charged": 42, "key": "ex-9/charge/1"})


def test_the_idempotency_key_names_the_run_the_test_asked_for_whatever_the_attempt() -> None:
    keys = [
        StepEnvironment(input={"id": "o", "amount": 1}, execution_id="e", run=run, attempt=attempt).run(charge).output
        for run, attempt in ((2, 1), (2, 3), (3, 1))
    ]

    assert [k["key"] for k in keys] == ["e/charge/2", "e/charge/2", "e/charge/3"]
    with pytest.raises(ValueError, match="run is 1-based"):
        StepEnvironment(run=0)


def test_the_context_describes_the_task_the_test_asked_for() -> None:
    deadline = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    seen: dict[str, Any] = {}

    def inspect(ctx: StepContext) -> None:
        seen.update(
            execution_id=ctx.execution_id,
            workflow=ctx.workflow,
            step=ctx.step,
            attempt=ctx.attempt,
            run=ctx.run,
            poll=ctx.poll,
            worker_id=ctx.worker_id,
            deadline=ctx.deadline,
            last_progress=ctx.last_progress,
        )

    StepEnvironment(
        execution_id="e",
        workflow="w",
        step="named",
        attempt=2,
        run=5,
        poll=4,
        worker_id="me",
        deadline=deadline,
        last_progress={"done": 40},
    ).run(inspect)

    assert seen == {
        "execution_id": "e",
        "workflow": "w",
        "step": "named",
        "attempt": 2,
        "run": 5,
        "poll": 4,
        "worker_id": "me",
        "deadline": deadline,
        "last_progress": {"done": 40},
    }


def test_earlier_results_fill_parameters_of_their_name() -> None:
    def receipt(charge: dict[str, Any]) -> str:
        return f"receipt for {charge['order']}"

    result = StepEnvironment(results={"charge": {"order": "o-1"}}).run(receipt)

    assert result.output == "receipt for o-1"


def test_ctx_result_reads_an_earlier_steps_output_by_any_name_and_a_missing_one_fails_for_good() -> None:
    def notify(ctx: StepContext) -> str:
        return f"sent {ctx.result('send-receipt')['id']}"

    env = StepEnvironment(results={"send-receipt": {"id": "r-1"}})

    assert env.run(notify).output == "sent r-1"
    missing = StepEnvironment(results={"charge": 1}).run(notify)
    assert missing.kind == "failure" and missing.failure is not None
    assert (missing.failure.type, missing.failure.non_retryable) == ("MissingArgument", True)
    assert "needs the result of step 'send-receipt', which has none" in missing.failure.message


def test_vars_given_to_the_environment_are_the_steps_read_only_ctx_vars() -> None:
    def next_page(ctx: StepContext) -> dict[str, Any]:
        try:
            ctx.vars["cursor"] = None  # type: ignore[index]
        except TypeError:
            return {"page": ctx.vars["cursor"] + 1, "attempts": ctx.vars["attempts"]}
        return {"changed": True}

    env = StepEnvironment(vars={"cursor": 3, "attempts": 1})

    assert env.run(next_page) == StepResult(kind="success", output={"page": 4, "attempts": 1})


def test_without_vars_the_environment_gives_the_step_empty_ctx_vars() -> None:
    def count(ctx: StepContext) -> int:
        return len(ctx.vars)

    assert StepEnvironment(results={"charge": 1}).run(count) == StepResult(kind="success", output=0)


def resize(ctx: StepContext, width: int, url: str) -> dict[str, Any]:
    return {"step": ctx.step, "function": ctx.function, "width": width, "url": url, "key": ctx.idempotency_key}


def test_args_and_workflow_step_let_one_function_be_tested_as_each_step_it_serves() -> None:
    fetched = {"fetch": {"url": "s3://i/1.png"}}
    small = StepEnvironment(results=fetched, args={"width": "128", "url": "s3://i/1.png"}, workflow_step="small")
    large = StepEnvironment(results=fetched, args={"width": 1024, "url": "s3://i/1.png"}, workflow_step="large")

    assert small.run(resize).output == {
        "step": "small",
        "function": "resize",
        "width": 128,
        "url": "s3://i/1.png",
        "key": "test-execution/small/1",
    }
    assert large.run(resize).output == {
        "step": "large",
        "function": "resize",
        "width": 1024,
        "url": "s3://i/1.png",
        "key": "test-execution/large/1",
    }


def test_the_environments_args_are_the_steps_read_only_ctx_args_and_none_by_default() -> None:
    def read(ctx: StepContext) -> dict[str, Any]:
        try:
            ctx.args["width"] = 0  # type: ignore[index]
        except TypeError:
            return dict(ctx.args)
        return {"changed": True}

    assert StepEnvironment(args={"width": 128}).run(read).output == {"width": 128}
    assert StepEnvironment().run(read).output == {}


def item_of(ctx: StepContext) -> dict[str, Any]:
    return {"item": ctx.item, "index": ctx.index, "key": ctx.idempotency_key}


def test_an_item_and_index_given_to_the_environment_are_the_foreach_steps_ctx_item_and_ctx_index() -> None:
    env = StepEnvironment(item={"id": "o-7", "tags": ("a", "b")}, index=2, execution_id="ex-9", run=3)

    result = env.run(item_of)

    # The item went through JSON as the engine's does; the key names the item after the run.
    assert result == StepResult(
        kind="success", output={"item": {"id": "o-7", "tags": ["a", "b"]}, "index": 2, "key": "ex-9/item_of/3/2"}
    )


def test_an_item_alone_is_at_index_0_and_an_index_alone_is_a_null_item() -> None:
    assert StepEnvironment(item="o-7").run(item_of).output == {
        "item": "o-7",
        "index": 0,
        "key": "test-execution/item_of/1/0",
    }
    assert StepEnvironment(index=4).run(item_of).output == {
        "item": None,
        "index": 4,
        "key": "test-execution/item_of/1/4",
    }
    with pytest.raises(ValueError, match="index is 0-based"):
        StepEnvironment(item="o-7", index=-1)


def test_without_an_item_the_environment_runs_an_ordinary_step_whose_ctx_item_and_ctx_index_are_none() -> None:
    assert StepEnvironment(args={"width": 128}).run(item_of).output == {
        "item": None,
        "index": None,
        "key": "test-execution/item_of/1",
    }


def test_without_workflow_step_ctx_step_is_the_function_the_environment_runs() -> None:
    def names(ctx: StepContext) -> list[str]:
        return [ctx.step, ctx.function]

    assert StepEnvironment().run(names).output == ["names", "names"]
    assert StepEnvironment(step="resize").run(names).output == ["resize", "resize"]


def test_an_outcome_given_to_the_environment_is_the_compensation_steps_ctx_outcome() -> None:
    def cancel_hotel(ctx: StepContext) -> dict[str, Any]:
        if ctx.outcome is None or ctx.outcome.phase == "Succeeded":
            return {"skipped": True}
        return {"refund": ctx.results["hotel"], "because": ctx.outcome.reason, "after": ctx.outcome.step}

    ending = ExecutionOutcome(phase="Failed", reason="card declined", step="pay")
    env = StepEnvironment(results={"hotel": "h-1"}, outcome=ending)

    result = env.run(cancel_hotel)

    assert result == StepResult(kind="success", output={"refund": "h-1", "because": "card declined", "after": "pay"})


def test_the_outcome_reaches_the_step_through_the_json_round_trip_a_worker_makes() -> None:
    seen: list[ExecutionOutcome | None] = []

    def notify(ctx: StepContext) -> None:
        seen.append(ctx.outcome)

    StepEnvironment(outcome=ExecutionOutcome(phase="Succeeded", output={"trip": ("t", 1)})).run(notify)

    assert seen == [ExecutionOutcome(phase="Succeeded", reason=None, step=None, output={"trip": ["t", 1]})]


def test_without_an_outcome_the_environment_runs_an_ordinary_step_whose_ctx_outcome_is_none() -> None:
    def charge(ctx: StepContext) -> bool:
        return ctx.outcome is None

    assert StepEnvironment(vars={"attempts": 1}).run(charge) == StepResult(kind="success", output=True)


def test_a_missing_or_invalid_input_is_the_failure_a_worker_reports() -> None:
    result = StepEnvironment(input={"id": "o-1"}).run(charge)

    assert result.kind == "failure"
    assert result.failure is not None
    assert (result.failure.type, result.failure.non_retryable) == ("InvalidArgument", True)
    assert "parameter 'input' does not accept the workflow input" in result.failure.message


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (lambda ctx: ctx.sleep("1h", result={"ok": 1}), {"kind": "sleep", "output": {"ok": 1}}),
        (lambda ctx: ctx.retry_after("30s"), {"kind": "retry_after"}),
        (lambda ctx: ctx.request_approval(kind="refund", timeout="2h", data={"n": 1}), {"kind": "approval"}),
    ],
)
def test_outcomes_are_returned_as_the_engine_receives_them(step: Any, expected: dict[str, Any]) -> None:
    def outcome(ctx: StepContext) -> Any:
        return step(ctx)

    result = StepEnvironment().run(outcome)

    assert result.kind == expected["kind"]
    assert result.output == expected.get("output")
    assert (result.sleep, result.retry_after, result.approval) == {
        "sleep": (Sleep(duration_ms=3_600_000, result={"ok": 1}), None, None),
        "retry_after": (None, RetryAfter(delay_ms=30_000), None),
        "approval": (None, None, ApprovalRequest(kind="refund", timeout_ms=7_200_000, data={"n": 1})),
    }[result.kind]


def test_an_exception_is_a_failure_with_its_type_and_stack_trace_and_the_exception_itself() -> None:
    boom = ApplicationError("card declined", type="Declined")

    def pay() -> None:
        raise boom

    result = StepEnvironment().run(pay)

    assert result.failure is not None
    assert (result.failure.type, result.failure.message, result.failure.non_retryable) == (
        "Declined",
        "card declined",
        False,
    )
    assert "in pay" in result.failure.stacktrace
    assert result.exception is boom


def test_an_outcome_built_and_not_returned_fails_as_in_a_worker() -> None:
    def forgetful(ctx: StepContext) -> None:
        ctx.retry_after(5)

    result = StepEnvironment().run(forgetful)

    assert result.failure is not None
    assert result.failure.type == "OutcomeNotReturned"
    assert isinstance(result.exception, NonRetryableError)


def test_heartbeats_are_recorded_in_order_from_a_sync_step() -> None:
    def copy(ctx: StepContext) -> int:
        for n in range(3):
            ctx.heartbeat({"copied": n})
        ctx.heartbeat()
        return 3

    env = StepEnvironment()
    result = env.run(copy)

    assert result.output == 3
    assert env.heartbeats == [{"copied": 0}, {"copied": 1}, {"copied": 2}, None]


def test_a_sync_step_cancelled_at_its_second_heartbeat_gets_step_cancelled_from_the_third() -> None:
    calls: list[int] = []

    def batch(ctx: StepContext) -> str:
        for n in range(5):
            ctx.heartbeat(n)
            calls.append(n)
        return "all done"

    env = StepEnvironment(on_heartbeat=lambda progress: env.cancel() if progress == 1 else None)
    result = env.run(batch)

    assert calls == [0, 1]
    assert result.kind == "cancelled"
    assert result.cancelled == "the step was cancelled on request"
    assert isinstance(result.exception, StepCancelled)
    assert result.exception.reason == "cancel_requested"


async def test_an_async_step_is_cancelled_at_its_await_by_a_concurrent_cancel() -> None:
    started = asyncio.Event()

    async def slow(ctx: StepContext) -> str:
        started.set()
        await asyncio.sleep(60)
        return "late"

    env = StepEnvironment()
    run = asyncio.create_task(env.run_async(slow))
    async with asyncio.timeout(10):
        await started.wait()
    env.cancel()
    async with asyncio.timeout(10):
        result = await run

    assert result.kind == "cancelled"
    assert isinstance(result.exception, asyncio.CancelledError)


def test_a_lost_lease_drops_the_outcome() -> None:
    def stuck(ctx: StepContext) -> str:
        deadline = time.monotonic() + 10
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.001)
        return f"stopped: {ctx.cancel_reason}"

    env = StepEnvironment()
    env.cancel("heartbeat_timeout")  # before it starts: it starts cancelled
    result = env.run(stuck)

    assert result.kind == "dropped"


def test_run_inside_an_event_loop_points_to_run_async() -> None:
    async def inside() -> None:
        StepEnvironment().run(charge)

    with pytest.raises(RuntimeError, match=r"await env.run_async\(fn\)"):
        asyncio.run(inside())
