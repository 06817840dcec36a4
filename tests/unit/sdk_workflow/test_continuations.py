"""Continuations: a worker that holds a code workflow runs it on a step's result and sends the commands
with the result; kept when the engine records them, dropped (replayed next time) when it does not."""

from __future__ import annotations

import json
from typing import Any

from cerebelum.v1 import worker_pb2
from cerebelum.workflow import WorkflowContext, replay
from cerebelum.workflow.definition import WorkflowDefinition
from cerebelum.workflow.tasks import WorkflowTaskHandler

from . import workflows as w
from .histories import History
from .test_workflow_tasks import ORDER, FakeHistoryRpc, commands_of, make_handler, workflow_task

NOW = 1_772_370_000.123  # the worker's clock when it continues (epoch seconds)


async def timed(wf: WorkflowContext) -> dict[str, Any]:
    await wf.step("first")
    at = wf.now()
    await wf.step("second")
    return {"at": at.isoformat()}


def step_task(step: str, function: str, *, execution_id: str = "ex-1") -> worker_pb2.Task:
    return worker_pb2.Task(task_token=f"t-{step}", execution_id=execution_id, step=function, workflow_step=step)


def record(history: History, token: str, commands: list[dict[str, Any]]) -> None:
    history.task_completed(token, commands)


def recorded_reply(history: History, *, after: int, time_ms: int, token: str) -> worker_pb2.CompleteTaskResponse:
    """What the engine answers when it recorded the continuation: the events after ``after``."""
    history.add("WorkflowTaskScheduled", {"token": token, "attempt": 1, "task_queue": "q", "visible_at_ms": 0})
    started = history.add("WorkflowTaskStarted", {"token": token, "worker_id": "w-1", "time_ms": time_ms})
    return worker_pb2.CompleteTaskResponse(
        disposition=worker_pb2.CompleteTaskResponse.ACCEPTED,
        workflow_task=worker_pb2.ContinuedWorkflowTask(
            started_seq=started, history_json=json.dumps(history.after(after))
        ),
    )


async def test_a_continuation_runs_the_cached_code_on_the_result_and_is_kept_once_recorded() -> None:
    rpc = FakeHistoryRpc()
    handler = make_handler(rpc, w.two_steps)
    history = History(ORDER)
    token, started = history.task_started()
    first = commands_of(
        await handler.run(workflow_task(history, rpc, function="two_steps", token=token, started=started))
    )
    record(history, token, first)

    output = {"charged": 2}
    continuation = handler.continue_after(step_task("charge#1", "charge"), json.dumps(output))

    assert continuation is not None
    assert continuation.message.after_seq == started
    sent = json.loads(continuation.message.commands_json)
    assert sent == [{"type": "step", "id": 2, "function": "ship", "args": {"order": "o-1", "amount": 2}}]
    assert "ex-1" not in handler.cache, "out of the cache until the engine answers"

    history.step_completed("charge#1", output)
    reply = recorded_reply(history, after=started, time_ms=continuation.message.time_ms, token="wt-c")
    handler.settle(continuation, reply)

    cached = handler.cache.take("ex-1")
    assert cached is not None and cached.last_seq == reply.workflow_task.started_seq
    handler.cache.put("ex-1", cached)
    record(history, "wt-c", sent)
    history.step_completed("ship#2", "shipped")
    token3, started3 = history.task_started()
    task = workflow_task(
        history, rpc, function="two_steps", token=token3, started=started3, after=reply.workflow_task.started_seq
    )
    last = commands_of(await handler.run(task))
    assert rpc.requests == [], "the kept instance took only the new events"
    assert last == [{"type": "complete", "output": {"first": output, "second": "shipped"}}]
    record(history, token3, last)
    replayed = replay(w.two_steps, history.events, execution_id="ex-1")
    assert (replayed.activations, replayed.outcome) == (3, last[0]), "the continuation replays like any task"


async def test_the_code_s_now_during_a_continuation_is_its_time_and_a_replay_gives_the_same() -> None:
    rpc = FakeHistoryRpc()
    definitions = {"timed": WorkflowDefinition("timed", timed)}
    handler = WorkflowTaskHandler(workflows=definitions, worker_id="w-1", history_rpc=rpc, clock=lambda: NOW)
    history = History()
    token, started = history.task_started()
    record(
        history,
        token,
        commands_of(await handler.run(workflow_task(history, rpc, function="timed", token=token, started=started))),
    )

    continuation = handler.continue_after(step_task("first#1", "first"), "null")
    assert continuation is not None and continuation.message.time_ms == 1_772_370_000_123
    history.step_completed("first#1", None)
    handler.settle(
        continuation, recorded_reply(history, after=started, time_ms=continuation.message.time_ms, token="wt-c")
    )
    record(history, "wt-c", json.loads(continuation.message.commands_json))
    history.step_completed("second#2", None)
    token3, started3 = history.task_started()
    started_c = next(
        e["seq"] for e in history.events if e["data"].get("token") == "wt-c" and e["type"] == "WorkflowTaskStarted"
    )
    ending = commands_of(
        await handler.run(
            workflow_task(history, rpc, function="timed", token=token3, started=started3, after=started_c)
        )
    )

    assert ending == [{"type": "complete", "output": {"at": "2026-03-01T13:00:00.123000+00:00"}}], (
        "NOW, not the event's"
    )
    record(history, token3, ending)
    assert replay(timed, history.events).outcome == ending[-1], "a replay reads the time from the history"


async def test_a_continuation_the_engine_did_not_record_is_dropped_and_the_next_task_replays() -> None:
    rpc = FakeHistoryRpc()
    handler = make_handler(rpc, w.two_steps)
    history = History(ORDER)
    token, started = history.task_started()
    record(
        history,
        token,
        commands_of(await handler.run(workflow_task(history, rpc, function="two_steps", token=token, started=started))),
    )
    continuation = handler.continue_after(step_task("charge#1", "charge"), json.dumps({"charged": 2}))
    assert continuation is not None

    handler.settle(continuation, worker_pb2.CompleteTaskResponse(disposition=worker_pb2.CompleteTaskResponse.ACCEPTED))

    assert "ex-1" not in handler.cache
    history.step_completed("charge#1", {"charged": 2})
    token2, started2 = history.task_started()
    task = workflow_task(
        history, rpc, function="two_steps", token=token2, started=started2, after=started, cut_at=started
    )
    again = commands_of(await handler.run(task))
    assert rpc.requests, "replayed from the start: the whole history was read"
    assert [c["function"] for c in again] == ["ship"]


async def test_no_continuation_for_an_execution_this_worker_does_not_hold() -> None:
    handler = make_handler(FakeHistoryRpc(), w.two_steps)
    assert handler.continue_after(step_task("charge#1", "charge"), "{}") is None
