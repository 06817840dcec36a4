"""The worker's workflow task handler: sticky cache, history fetching, and its answers to the engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cerebelum.v1 import worker_pb2
from cerebelum.workflow import WorkflowContext
from cerebelum.workflow.definition import WorkflowDefinition
from cerebelum.workflow.tasks import WorkflowTaskHandler

from . import workflows as w
from .histories import Command, History, default_respond


class FakeHistoryRpc:
    """``GetWorkflowHistory`` over the histories of the tests, ``page`` events at a time."""

    def __init__(self, page: int = 3) -> None:
        self.histories: dict[str, History] = {}  # by task token
        self.requests: list[worker_pb2.GetWorkflowHistoryRequest] = []
        self.page = page

    async def __call__(
        self, request: worker_pb2.GetWorkflowHistoryRequest, *, timeout: float | None = None
    ) -> worker_pb2.GetWorkflowHistoryResponse:
        self.requests.append(request)
        history = self.histories[request.task_token]
        events = history.after(request.after_seq)[: self.page]
        return worker_pb2.GetWorkflowHistoryResponse(history_json=json.dumps(events))


def make_handler(rpc: FakeHistoryRpc, *fns: Callable[..., Any], cache: int = 1000) -> WorkflowTaskHandler:
    workflows = {fn.__name__: WorkflowDefinition(fn.__name__, fn) for fn in fns}
    return WorkflowTaskHandler(workflows=workflows, worker_id="w-1", history_rpc=rpc, max_cached_workflows=cache)


def workflow_task(
    history: History,
    rpc: FakeHistoryRpc,
    *,
    function: str,
    token: str,
    started: int,
    after: int = 0,
    execution_id: str = "ex-1",
    cut_at: int | None = None,
) -> worker_pb2.Task:
    events = [e for e in history.after(after) if cut_at is None or e["seq"] <= cut_at]
    rpc.histories[token] = history
    return worker_pb2.Task(
        task_token=token,
        execution_id=execution_id,
        workflow="wf",
        attempt=1,
        workflow_task=worker_pb2.WorkflowTask(
            function=function, history_after_seq=after, history_json=json.dumps(events), started_seq=started
        ),
    )


def commands_of(reply: worker_pb2.CompleteTaskRequest) -> list[Command]:
    assert reply.WhichOneof("outcome") == "workflow_commands", reply
    commands: list[Command] = json.loads(reply.workflow_commands.commands_json)
    return commands


def answer(history: History, token: str, commands: list[Command]) -> None:
    """Record the task's commands and every waiting command's success, as the engine would."""
    for command in history.task_completed(token, commands):
        if "step" in command:
            kind, data = default_respond(command)
            history.add(kind, {"step": command["step"], **data})


ORDER = {"id": "o-1", "amount": 2}


async def test_a_fresh_task_is_answered_with_its_commands_and_the_execution_is_cached() -> None:
    rpc = FakeHistoryRpc()
    handler = make_handler(rpc, w.two_steps)
    history = History(ORDER)
    token, started = history.task_started()
    reply = await handler.run(workflow_task(history, rpc, function="two_steps", token=token, started=started))
    assert reply.task_token == token and reply.worker_id == "w-1"
    assert [c["function"] for c in commands_of(reply)] == ["charge"]
    assert "ex-1" in handler.cache
    assert rpc.requests == []


async def test_a_sticky_task_applies_only_the_new_events_to_the_cached_instance() -> None:
    rpc = FakeHistoryRpc()
    handler = make_handler(rpc, w.two_steps)
    history = History(ORDER)
    token, started = history.task_started()
    first = await handler.run(workflow_task(history, rpc, function="two_steps", token=token, started=started))
    answer(history, token, commands_of(first))
    token2, started2 = history.task_started()
    task = workflow_task(history, rpc, function="two_steps", token=token2, started=started2, after=started)
    second = commands_of(await handler.run(task))
    assert rpc.requests == []  # nothing fetched: the cache held the execution at `after`
    fresh = make_handler(rpc, w.two_steps)
    again = await fresh.run(workflow_task(history, rpc, function="two_steps", token=token2, started=started2))
    assert (
        second
        == commands_of(again)
        == [{"type": "step", "id": 2, "function": "ship", "args": {"order": "o-1", "amount": 2}}]
    )


async def test_a_task_for_an_execution_not_in_the_cache_reads_the_whole_history_page_by_page() -> None:
    rpc = FakeHistoryRpc(page=3)
    handler = make_handler(rpc, w.polling)
    history = History()
    token, started = history.task_started()
    for _ in range(3):
        reply = await make_handler(rpc, w.polling).run(
            workflow_task(history, rpc, function="polling", token=token, started=started)
        )
        answer(history, token, commands_of(reply))
        token, started = history.task_started()
    task = workflow_task(history, rpc, function="polling", token=token, started=started, after=started - 3)
    commands = commands_of(await handler.run(task))
    assert commands == [{"type": "sleep", "id": 4, "duration": "5s"}]
    afters = [r.after_seq for r in rpc.requests]
    assert afters == list(range(0, started, 3))
    assert all(r.task_token == token and r.worker_id == "w-1" for r in rpc.requests)


async def test_a_history_cut_short_is_completed_from_where_it_stops() -> None:
    rpc = FakeHistoryRpc(page=100)
    history = History()
    token, started = history.task_started()
    for _ in range(4):
        reply = await make_handler(rpc, w.polling).run(
            workflow_task(history, rpc, function="polling", token=token, started=started)
        )
        answer(history, token, commands_of(reply))
        token, started = history.task_started()
    task = workflow_task(history, rpc, function="polling", token=token, started=started, cut_at=5)
    commands = commands_of(await make_handler(rpc, w.polling).run(task))
    assert [r.after_seq for r in rpc.requests] == [5]
    assert commands == [{"type": "step", "id": 5, "function": "check_droplet", "args": {"attempt": 2}}]


async def test_a_cached_instance_whose_commands_were_refused_is_replayed_from_the_start() -> None:
    rpc = FakeHistoryRpc(page=100)
    handler = make_handler(rpc, w.two_steps)
    history = History(ORDER)
    token, started = history.task_started()
    await handler.run(workflow_task(history, rpc, function="two_steps", token=token, started=started))
    history.task_failed(token)  # the engine refused them
    token2, started2 = history.task_started()
    task = workflow_task(history, rpc, function="two_steps", token=token2, started=started2, after=started)
    commands = commands_of(await handler.run(task))
    assert [r.after_seq for r in rpc.requests] == [0]
    assert commands == [
        {
            "type": "step",
            "id": 1,
            "function": "charge",
            "args": {"order": "o-1"},
            "timeout": "30s",
            "retry": {"maxAttempts": 2},
        }
    ]


async def test_non_determinism_is_answered_with_a_retryable_failure_and_evicts_the_execution() -> None:
    async def two_steps(wf: WorkflowContext, input: w.Order) -> None:  # the same name, changed code
        await wf.step("refund", order=input.id)

    rpc = FakeHistoryRpc()
    history = History(ORDER)
    token, started = history.task_started()
    reply = await make_handler(rpc, w.two_steps).run(
        workflow_task(history, rpc, function="two_steps", token=token, started=started)
    )
    answer(history, token, commands_of(reply))
    changed = make_handler(rpc, two_steps)
    token2, started2 = history.task_started()
    reply = await changed.run(workflow_task(history, rpc, function="two_steps", token=token2, started=started2))
    assert reply.WhichOneof("outcome") == "failure"
    assert (reply.failure.type, reply.failure.non_retryable) == ("NonDeterminism", False)
    assert (
        "seq 3" in reply.failure.message and "'refund'" in reply.failure.message and "'charge'" in reply.failure.message
    )
    assert "NonDeterminismError" in reply.failure.stacktrace
    assert "ex-1" not in changed.cache


async def test_an_sdk_error_is_answered_as_a_workflow_task_error_and_evicts_the_execution() -> None:
    rpc = FakeHistoryRpc()
    handler = make_handler(rpc, w.two_steps)
    history = History(ORDER)
    token, started = history.task_started()
    await handler.run(workflow_task(history, rpc, function="two_steps", token=token, started=started))
    token2, started2 = history.task_started()  # no WorkflowTaskCompleted of the first: the cache is stale
    broken = workflow_task(history, rpc, function="two_steps", token=token2, started=started2 + 5, after=started)
    reply = await handler.run(broken)
    assert reply.WhichOneof("outcome") == "failure"
    assert (reply.failure.type, reply.failure.non_retryable) == ("WorkflowTaskError", False)
    assert f"seq {started2 + 5}" in reply.failure.message
    assert "ex-1" not in handler.cache


async def test_an_unknown_function_is_a_workflow_task_error() -> None:
    rpc = FakeHistoryRpc()
    history = History()
    token, started = history.task_started()
    reply = await make_handler(rpc, w.polling).run(
        workflow_task(history, rpc, function="nope", token=token, started=started)
    )
    assert reply.failure.type == "WorkflowTaskError" and "'nope'" in reply.failure.message


async def test_an_execution_that_ended_is_evicted() -> None:
    rpc = FakeHistoryRpc()
    handler = make_handler(rpc, w.failing)
    history = History()
    token, started = history.task_started()
    reply = await handler.run(workflow_task(history, rpc, function="failing", token=token, started=started))
    assert "ex-1" in handler.cache
    answer(history, token, commands_of(reply))
    token2, started2 = history.task_started()
    task = workflow_task(history, rpc, function="failing", token=token2, started=started2, after=started)
    assert commands_of(await handler.run(task))[-1]["type"] == "fail"
    assert "ex-1" not in handler.cache


async def test_the_cache_evicts_the_least_recently_used_execution_at_its_cap() -> None:
    rpc = FakeHistoryRpc(page=100)
    handler = make_handler(rpc, w.polling, cache=2)
    histories = {ex: History() for ex in ("a", "b", "c")}
    started: dict[str, int] = {}

    async def run(ex: str) -> None:
        history = histories[ex]
        token, seq = history.task_started()
        after = started.get(ex, 0)
        task = workflow_task(
            history, rpc, function="polling", token=f"{ex}-{token}", started=seq, after=after, execution_id=ex
        )
        rpc.histories[task.task_token] = history
        reply = await handler.run(task)
        answer(history, token, commands_of(reply))
        started[ex] = seq

    await run("a")
    await run("b")
    await run("a")  # a is now the most recently used
    await run("c")
    assert len(handler.cache) == 2
    assert "b" not in handler.cache and "a" in handler.cache and "c" in handler.cache
    rpc.requests.clear()
    await run("b")  # evicted: read again in full
    assert [r.after_seq for r in rpc.requests] == [0]
    assert "a" not in handler.cache


async def test_a_cache_of_zero_keeps_nothing() -> None:
    rpc = FakeHistoryRpc()
    handler = make_handler(rpc, w.polling, cache=0)
    history = History()
    token, started = history.task_started()
    await handler.run(workflow_task(history, rpc, function="polling", token=token, started=started))
    assert len(handler.cache) == 0
