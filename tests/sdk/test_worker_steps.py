"""How steps are registered, how their parameters are filled and how their results are reported."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from cerebelum import ExecutionOutcome, StepContext, Worker
from tests.support.waiting import eventually

from .fakes import FakeWorkerService, make_task, running


class Order(BaseModel):
    id: str
    amount: int


class Receipt(BaseModel):
    order_id: str
    charged: int


def make_worker(service: FakeWorkerService, **kwargs: Any) -> Worker:
    return Worker("orders", address=service.address, poll_wait=0.5, **kwargs)


async def test_an_async_step_gets_the_input_and_earlier_results_and_its_output_is_reported(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def total(input: dict[str, int], price: int, tax: int) -> int:
        return input["quantity"] * price + tax

    async with running(worker):
        done = await worker_service.run_task(make_task("total", input={"quantity": 3}, results={"price": 5, "tax": 2}))

    assert done.WhichOneof("outcome") == "success"
    assert json.loads(done.success.output_json) == 17
    assert done.worker_id == worker.worker_id


async def test_polls_name_the_queue_the_worker_id_and_only_the_registered_steps(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service, worker_id="w-1")

    @worker.step()
    async def first() -> None: ...

    @worker.step(name="second-step")
    def second() -> None: ...

    @worker.step
    async def third() -> None: ...

    async with running(worker):
        await worker_service.run_task(make_task("second-step"))

    poll = worker_service.polls[0]
    assert (poll.worker_id, poll.task_queue, list(poll.steps), poll.wait_ms) == (
        "w-1",
        "orders",
        ["first", "second-step", "third"],
        500,
    )
    assert worker.step_names == ("first", "second-step", "third")
    assert callable(third)


async def test_a_sync_step_runs_in_a_worker_thread(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)
    loop_thread = threading.get_ident()

    @worker.step()
    def where(input: str) -> dict[str, Any]:
        return {"input": input, "in_loop_thread": threading.get_ident() == loop_thread}

    async with running(worker):
        done = await worker_service.run_task(make_task("where", input="hi"))

    assert json.loads(done.success.output_json) == {"input": "hi", "in_loop_thread": False}


async def test_a_model_parameter_gets_a_model_instance_and_a_returned_model_becomes_a_dict(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)
    seen: list[object] = []

    @worker.step()
    async def charge(input: Order) -> Receipt:
        seen.append(input)
        return Receipt(order_id=input.id, charged=input.amount)

    @worker.step()
    async def notify(charge: Receipt) -> list[Receipt]:
        seen.append(charge)
        return [charge]

    async with running(worker):
        charged = await worker_service.run_task(make_task("charge", input={"id": "o-1", "amount": "42"}))
        notified = await worker_service.run_task(
            make_task("notify", results={"charge": json.loads(charged.success.output_json)})
        )

    assert seen == [Order(id="o-1", amount=42), Receipt(order_id="o-1", charged=42)]
    assert json.loads(charged.success.output_json) == {"order_id": "o-1", "charged": 42}
    assert json.loads(notified.success.output_json) == [{"order_id": "o-1", "charged": 42}]


async def test_the_context_goes_to_a_parameter_annotated_step_context_or_named_ctx(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service, worker_id="w-ctx")
    contexts: list[StepContext] = []

    @worker.step()
    async def annotated(context: StepContext) -> None:
        contexts.append(context)

    @worker.step()
    def named(ctx: Any) -> None:
        contexts.append(ctx)

    async with running(worker):
        await worker_service.run_task(make_task("annotated", attempt=2, run=4, poll=3, execution_id="ex-9"))
        await worker_service.run_task(make_task("named"))

    first, second = contexts
    assert isinstance(second, StepContext)
    assert (first.execution_id, first.workflow, first.step, first.attempt, first.poll) == (
        "ex-9",
        "wf",
        "annotated",
        2,
        3,
    )
    assert (first.run, first.idempotency_key, first.worker_id) == (4, "ex-9/annotated/4", "w-ctx")
    assert first.deadline is not None and first.deadline.year == 2030
    assert second.step == "named"


async def test_a_missing_result_fails_the_attempt_for_good_naming_the_parameter_and_step(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def ship(address: str) -> None: ...

    async with running(worker):
        done = await worker_service.run_task(make_task("ship", results={"other": 1}))

    assert done.WhichOneof("outcome") == "failure"
    assert done.failure.non_retryable
    assert done.failure.type == "MissingArgument"
    assert "'address'" in done.failure.message
    assert "'ship'" in done.failure.message


async def test_ctx_result_reads_an_earlier_steps_output_by_a_name_no_parameter_can_have(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def notify(ctx: StepContext) -> str:
        receipt = ctx.result("send-receipt")
        return f"{receipt} ({sorted(ctx.results)})"

    @worker.step()
    async def missing(ctx: StepContext) -> object:
        return ctx.result("send-receit")

    async with running(worker):
        done = await worker_service.run_task(make_task("notify", results={"send-receipt": "r-1", "charge": 2}))
        failed = await worker_service.run_task(make_task("missing", results={"send-receipt": "r-1"}))

    assert done.WhichOneof("outcome") == "success" and json.loads(done.success.output_json) == (
        "r-1 (['charge', 'send-receipt'])"
    )
    assert failed.WhichOneof("outcome") == "failure"
    assert (failed.failure.type, failed.failure.non_retryable) == ("MissingArgument", True)
    assert failed.failure.message == (
        "step 'missing' needs the result of step 'send-receit', which has none "
        "(is the step name right, and does this step come after it?)"
    )


async def test_ctx_vars_holds_the_workflow_variables_the_task_carries(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def fetch_page(ctx: StepContext) -> dict[str, Any]:
        return {"page": ctx.vars["cursor"]["page"] + 1, "vars": dict(ctx.vars)}

    variables = {"attempts": 2, "cursor": {"page": 3}, "last_error": None}
    async with running(worker):
        done = await worker_service.run_task(make_task("fetch_page", results={"start": 1}, vars=variables))

    assert done.WhichOneof("outcome") == "success"
    assert json.loads(done.success.output_json) == {"page": 4, "vars": variables}


@pytest.mark.parametrize(
    "arguments",
    [
        {"input": 1, "results": {}},
        {"input": 1, "results": {}, "vars": None},
        {"input": 1, "results": {}, "vars": [["attempts", 2]]},
        {"input": 1, "results": {}, "vars": "attempts=2"},
    ],
    ids=["without-the-key", "null", "a-list", "a-string"],
)
async def test_ctx_vars_is_empty_when_the_task_carries_no_vars_object(
    worker_service: FakeWorkerService, arguments: dict[str, Any]
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def count(ctx: StepContext) -> dict[str, Any]:
        return {"vars": dict(ctx.vars)}

    task = make_task("count")
    task.arguments_json = json.dumps(arguments)
    async with running(worker):
        done = await worker_service.run_task(task)

    assert done.WhichOneof("outcome") == "success"
    assert json.loads(done.success.output_json) == {"vars": {}}


async def test_a_step_cannot_change_ctx_vars_it_returns_a_result_the_workflow_sets_them_from(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def bump(ctx: StepContext) -> int:
        ctx.vars["attempts"] = ctx.vars["attempts"] + 1  # type: ignore[index]
        return 0

    async with running(worker):
        done = await worker_service.run_task(make_task("bump", vars={"attempts": 2}))

    assert done.WhichOneof("outcome") == "failure"
    assert done.failure.type == "TypeError"
    assert "does not support item assignment" in done.failure.message


async def test_ctx_outcome_tells_a_compensation_step_how_the_execution_ended(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)
    seen: list[ExecutionOutcome | None] = []

    @worker.step(name="cancel-hotel")
    def cancel_hotel(ctx: StepContext) -> str:
        seen.append(ctx.outcome)
        return "cancelled"

    ending = {"phase": "Failed", "reason": "card declined", "step": "pay", "output": None}
    async with running(worker):
        done = await worker_service.run_task(make_task("cancel-hotel", results={"hotel": "h-1"}, outcome=ending))

    assert done.WhichOneof("outcome") == "success"
    assert seen == [ExecutionOutcome(phase="Failed", reason="card declined", step="pay", output=None)]


async def test_ctx_outcome_gives_a_finally_step_the_output_of_an_execution_that_succeeded(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def notify(ctx: StepContext) -> dict[str, Any]:
        assert ctx.outcome is not None
        return {"phase": ctx.outcome.phase, "reason": ctx.outcome.reason, "output": ctx.outcome.output}

    ending = {"phase": "Succeeded", "reason": None, "step": None, "output": {"trip": "t-1"}}
    async with running(worker):
        done = await worker_service.run_task(make_task("notify", outcome=ending))

    assert done.WhichOneof("outcome") == "success"
    assert json.loads(done.success.output_json) == {"phase": "Succeeded", "reason": None, "output": {"trip": "t-1"}}


@pytest.mark.parametrize(
    "arguments",
    [
        {"input": 1, "results": {}},
        {"input": 1, "results": {}, "outcome": None},
        {"input": 1, "results": {}, "outcome": ["Failed", "card declined"]},
        {"input": 1, "results": {}, "outcome": "Failed"},
        {"input": 1, "results": {}, "outcome": {"reason": "card declined", "step": "pay"}},
        {"input": 1, "results": {}, "outcome": {"phase": 3, "reason": "card declined"}},
    ],
    ids=["without-the-key", "null", "a-list", "a-string", "without-a-phase", "a-phase-not-a-string"],
)
async def test_ctx_outcome_is_none_when_the_task_carries_no_outcome_object_with_a_phase(
    worker_service: FakeWorkerService, arguments: dict[str, Any]
) -> None:
    worker = make_worker(worker_service)
    seen: list[ExecutionOutcome | None] = []

    @worker.step()
    def charge(ctx: StepContext) -> int:
        seen.append(ctx.outcome)
        return 0

    task = make_task("charge")
    task.arguments_json = json.dumps(arguments)
    async with running(worker):
        done = await worker_service.run_task(task)

    assert done.WhichOneof("outcome") == "success"
    assert seen == [None]


async def test_a_reason_or_step_that_is_not_text_is_read_as_none_beside_a_valid_phase(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)
    seen: list[ExecutionOutcome | None] = []

    @worker.step()
    def notify(ctx: StepContext) -> None:
        seen.append(ctx.outcome)

    ending = {"phase": "Cancelled", "reason": {"text": "stop"}, "step": 7}
    async with running(worker):
        await worker_service.run_task(make_task("notify", outcome=ending))

    assert seen == [ExecutionOutcome(phase="Cancelled", reason=None, step=None, output=None)]


async def test_a_step_cannot_change_ctx_outcome(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def notify(ctx: StepContext) -> None:
        assert ctx.outcome is not None
        ctx.outcome.phase = "Succeeded"  # type: ignore[misc]

    async with running(worker):
        done = await worker_service.run_task(make_task("notify", outcome={"phase": "Failed"}))

    assert done.WhichOneof("outcome") == "failure"
    assert done.failure.type == "FrozenInstanceError"


async def test_a_step_that_names_a_function_runs_it_with_ctx_step_the_workflow_step_and_ctx_function_the_function(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)
    seen: list[tuple[str, str, str]] = []

    @worker.step()
    def resize(ctx: StepContext) -> None:
        seen.append((ctx.step, ctx.function, ctx.idempotency_key))

    async with running(worker):
        done = await worker_service.run_task(make_task("resize", workflow_step="small", run=2))

    assert done.WhichOneof("outcome") == "success"
    assert seen == [("small", "resize", "ex-1/small/2")]
    assert list(worker_service.polls[0].steps) == ["resize"], "the worker asks for the function it registered"


async def test_a_task_from_an_engine_before_workflow_step_gives_ctx_step_the_same_name_as_ctx_function(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)
    seen: list[tuple[str, str]] = []

    @worker.step()
    def resize(ctx: StepContext) -> None:
        seen.append((ctx.step, ctx.function))

    async with running(worker):
        await worker_service.run_task(make_task("resize"))

    assert seen == [("resize", "resize")]


async def test_a_task_for_a_function_the_worker_lacks_fails_for_good_naming_it_and_the_workflow_step(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def fetch() -> None: ...

    async with running(worker):
        done = await worker_service.run_task(make_task("resize", workflow_step="small"))

    assert (done.failure.type, done.failure.non_retryable) == ("UnknownStep", True)
    assert done.failure.message == "this worker has no step 'resize' (to run step 'small')"


async def test_args_fill_the_parameters_of_their_names_converted_by_their_annotations(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def resize(width: int, url: str, order: Order) -> dict[str, Any]:
        return {"width": width, "url": url, "order": order.id, "types": [type(width).__name__, type(order).__name__]}

    arguments = {"width": "128", "url": "s3://i/1.png", "order": {"id": "o-1", "amount": "42"}}
    async with running(worker):
        done = await worker_service.run_task(make_task("resize", workflow_step="small", args=arguments))

    assert done.WhichOneof("outcome") == "success"
    assert json.loads(done.success.output_json) == {
        "width": 128,
        "url": "s3://i/1.png",
        "order": "o-1",
        "types": ["int", "Order"],
    }


async def test_an_argument_outranks_an_earlier_steps_result_of_the_same_name_and_leaves_input_and_ctx_alone(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def resize(ctx: StepContext, input: dict[str, Any], width: int, fetch: dict[str, Any]) -> dict[str, Any]:
        return {"width": width, "fetch": fetch, "input": input, "ctx": isinstance(ctx, StepContext)}

    task = make_task(
        "resize",
        workflow_step="large",
        input={"width": 512},
        results={"width": 1, "fetch": {"url": "s3://i/1.png"}},
        args={"width": 1024, "input": "not the input", "ctx": "not the context"},
    )
    async with running(worker):
        done = await worker_service.run_task(task)

    assert json.loads(done.success.output_json) == {
        "width": 1024,
        "fetch": {"url": "s3://i/1.png"},
        "input": {"width": 512},
        "ctx": True,
    }


async def test_an_argument_its_parameter_does_not_accept_fails_for_good_naming_the_argument_step_and_function(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def resize(width: int) -> int:
        return width

    async with running(worker):
        done = await worker_service.run_task(make_task("resize", workflow_step="small", args={"width": "wide"}))

    assert (done.failure.type, done.failure.non_retryable) == ("InvalidArgument", True)
    assert done.failure.message.startswith(
        "step 'small' (function 'resize'): parameter 'width' does not accept the argument 'width': "
    )


async def test_a_parameter_with_neither_an_argument_nor_a_result_fails_for_good_naming_the_workflow_step(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def resize(width: int, url: str) -> None: ...

    async with running(worker):
        done = await worker_service.run_task(make_task("resize", workflow_step="small", args={"width": 128}))

    assert (done.failure.type, done.failure.non_retryable) == ("MissingArgument", True)
    assert done.failure.message == (
        "step 'small' (function 'resize'): parameter 'url' needs an argument of that name or the result of step "
        "'url', and has neither (is the step name right, and does this step depend on it?)"
    )


async def test_ctx_args_holds_the_arguments_the_task_carries_read_only(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def resize(ctx: StepContext) -> dict[str, Any]:
        try:
            ctx.args["width"] = 0  # type: ignore[index]
        except TypeError:
            return dict(ctx.args)
        return {"changed": True}

    async with running(worker):
        done = await worker_service.run_task(make_task("resize", args={"width": 128, "url": "s3://i/1.png"}))

    assert json.loads(done.success.output_json) == {"width": 128, "url": "s3://i/1.png"}


@pytest.mark.parametrize(
    "arguments",
    [
        {"input": 1, "results": {}},
        {"input": 1, "results": {}, "args": None},
        {"input": 1, "results": {}, "args": [["width", 128]]},
        {"input": 1, "results": {}, "args": "width=128"},
    ],
    ids=["without-the-key", "null", "a-list", "a-string"],
)
async def test_ctx_args_is_empty_when_the_task_carries_no_args_object(
    worker_service: FakeWorkerService, arguments: dict[str, Any]
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def resize(ctx: StepContext, width: int = 64) -> dict[str, Any]:
        return {"args": dict(ctx.args), "width": width}

    task = make_task("resize")
    task.arguments_json = json.dumps(arguments)
    async with running(worker):
        done = await worker_service.run_task(task)

    assert done.WhichOneof("outcome") == "success"
    assert json.loads(done.success.output_json) == {"args": {}, "width": 64}


async def test_ctx_item_and_ctx_index_are_the_item_a_foreach_steps_task_carries_and_its_position(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def charge_order(ctx: StepContext) -> dict[str, Any]:
        return {"item": ctx.item, "index": ctx.index, "key": ctx.idempotency_key}

    order = {"id": "o-7", "amount": 42}
    async with running(worker):
        done = await worker_service.run_task(make_task("charge_order", item=order, index=2, run=3))

    assert done.WhichOneof("outcome") == "success"
    assert json.loads(done.success.output_json) == {"item": order, "index": 2, "key": "ex-1/charge_order/3/2"}


async def test_an_item_that_is_null_still_has_its_index(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def check(ctx: StepContext) -> list[Any]:
        return [ctx.item, ctx.index]

    async with running(worker):
        done = await worker_service.run_task(make_task("check", item=None, index=0))

    assert json.loads(done.success.output_json) == [None, 0]


@pytest.mark.parametrize(
    "arguments",
    [
        {"input": 1, "results": {}},
        {"input": 1, "results": {}, "item": {"id": "o-7"}},
        {"input": 1, "results": {}, "item": {"id": "o-7"}, "index": None},
        {"input": 1, "results": {}, "item": {"id": "o-7"}, "index": "2"},
        {"input": 1, "results": {}, "item": {"id": "o-7"}, "index": -1},
        {"input": 1, "results": {}, "item": {"id": "o-7"}, "index": True},
    ],
    ids=["without-the-keys", "without-an-index", "null-index", "a-string-index", "a-negative-index", "a-bool-index"],
)
async def test_ctx_item_and_ctx_index_are_none_when_the_task_carries_no_item_index(
    worker_service: FakeWorkerService, arguments: dict[str, Any]
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def check(ctx: StepContext) -> list[Any]:
        return [ctx.item, ctx.index]

    task = make_task("check")
    task.arguments_json = json.dumps(arguments)
    async with running(worker):
        done = await worker_service.run_task(task)

    assert done.WhichOneof("outcome") == "success"
    assert json.loads(done.success.output_json) == [None, None]


async def test_a_parameter_with_a_default_takes_it_when_the_result_is_missing(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def greet(input: str = "world", punctuation: str = "!") -> str:
        return f"hello {input}{punctuation}"

    async with running(worker):
        done = await worker_service.run_task(make_task("greet"))

    assert json.loads(done.success.output_json) == "hello world!"


async def test_an_input_that_does_not_validate_fails_the_attempt_for_good(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def charge(input: Order) -> None: ...

    async with running(worker):
        done = await worker_service.run_task(make_task("charge", input={"id": "o-1"}))

    assert done.failure.non_retryable
    assert done.failure.type == "InvalidArgument"
    assert "'input'" in done.failure.message


async def test_registering_two_steps_with_the_same_name_is_refused() -> None:
    worker = Worker("q")

    @worker.step()
    async def one() -> None: ...

    with pytest.raises(ValueError, match="already registered"):
        worker.step(name="one")(one)


async def test_a_worker_without_steps_refuses_to_run() -> None:
    with pytest.raises(RuntimeError, match="register at least one step"):
        await Worker("q").run_async()


async def test_the_worker_id_defaults_to_host_pid_and_a_random_suffix() -> None:
    import os

    worker_id = Worker("q").worker_id
    host_and_pid, suffix = worker_id.rsplit("-", 1)
    assert host_and_pid.endswith(f"-{os.getpid()}")
    assert len(suffix) == 4
    assert Worker("q").worker_id != worker_id


async def test_steps_of_one_worker_run_concurrently(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service, max_concurrency=3)
    gate = asyncio.Event()
    started = 0

    @worker.step()
    async def wait_for_gate() -> None:
        nonlocal started
        started += 1
        if started == 3:
            gate.set()
        await gate.wait()

    async with running(worker):
        for n in range(3):
            await worker_service.tasks.put(make_task("wait_for_gate", token=f"t{n}"))
        async with asyncio.timeout(30):
            await gate.wait()
            await eventually(lambda: len(worker_service.completions) >= 3, what="three completions")


async def test_a_report_asks_for_the_slot_s_next_task_and_one_handed_back_runs_without_a_poll(
    worker_service: FakeWorkerService,
) -> None:
    worker = Worker("orders", address=worker_service.address, poll_wait=0.5, worker_id="w-next")

    @worker.step()
    async def first() -> str:
        return "one"

    @worker.step()
    async def second() -> str:
        return "two"

    worker_service.next_tasks["t-first"] = make_task("second", token="t-second")
    async with running(worker):
        report = await worker_service.run_task(make_task("first", token="t-first"))
        await eventually(
            lambda: worker_service.completion("t-second") is not None, what="the handed-back task's report"
        )

    poll = report.poll_next
    assert (poll.worker_id, poll.task_queue, list(poll.steps), poll.wait_ms) == (
        "w-next",
        "orders",
        ["first", "second"],
        0,
    )
    done = worker_service.completion("t-second")
    assert done is not None and json.loads(done.success.output_json) == "two"
