"""Determinism: patches, now/random/uuid, changed code detected, and what workflow code may not do."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import pytest

from cerebelum.workflow import NonDeterminismError, WorkflowContext, WorkflowTaskError, replay
from cerebelum.workflow.definition import WorkflowDefinition
from cerebelum.workflow.history import parse_events
from cerebelum.workflow.replay import Replayer

from . import workflows as w
from .histories import Command, History, Simulation


def live_commands(fn: Callable[..., Any], history: History, started: int, **options: Any) -> list[Command]:
    replayer = Replayer(WorkflowDefinition(fn.__name__, fn), execution_id="ex-1", workflow="wf", **options)
    try:
        replayer.feed(parse_events(history.events))
        return replayer.run_live(started)
    finally:
        replayer.close()


# -- patches -------------------------------------------------------------------------------


async def old_code(wf: WorkflowContext) -> str:
    await wf.step("a")
    await wf.step("b")
    return "old"


async def patched_code(wf: WorkflowContext) -> str:
    await wf.step("a")
    if wf.patched("add-audit"):
        await wf.step("audit")
        assert wf.patched("add-audit")  # memoised: no second marker
    await wf.step("b")
    return "new" if wf.patched("add-audit") else "old"


def test_patched_is_true_live_and_records_a_marker() -> None:
    sim = Simulation(patched_code)
    sim.run()
    assert [(c["type"], c.get("function") or c.get("patch")) for c in sim.all_commands()] == [
        ("step", "a"),
        ("patch", "add-audit"),
        ("step", "audit"),
        ("step", "b"),
        ("complete", None),
    ]
    assert [c.get("id") for c in sim.all_commands()] == [1, 2, 3, 4, None]
    assert sim.outcome["output"] == "new"


def test_patched_is_false_on_a_history_from_before_the_patch() -> None:
    sim = Simulation(old_code)
    sim.run()
    result = replay(patched_code, sim.history.events)
    assert result.outcome == {"type": "complete", "output": "old"}


def test_patched_is_true_on_a_history_that_recorded_it() -> None:
    sim = Simulation(patched_code)
    sim.run()
    result = replay(patched_code, sim.history.events)
    assert result.outcome == {"type": "complete", "output": "new"}
    assert [c["type"] for c in result.commands].count("patch") == 1


def test_an_old_history_in_flight_keeps_the_old_path_after_the_patched_point() -> None:
    history = History()
    token, _ = history.task_started()
    history.task_completed(token, [{"type": "step", "id": 1, "function": "a", "args": {}}])
    history.step_completed("a#1", None)
    token, _ = history.task_started()
    history.task_completed(token, [{"type": "step", "id": 2, "function": "b", "args": {}}])  # old code's b
    history.step_completed("b#2", None)
    _, started = history.task_started()
    assert live_commands(patched_code, history, started) == [{"type": "complete", "output": "old"}]


# -- now, random, uuid -----------------------------------------------------------------------


async def clocked(wf: WorkflowContext) -> dict[str, Any]:
    before = wf.now()
    draws = [wf.random().randint(0, 10**9) for _ in range(3)]
    ident = wf.uuid4()
    await wf.sleep(60)
    return {"before": before.isoformat(), "after": wf.now().isoformat(), "draws": draws, "uuid": str(ident)}


def test_now_random_and_uuid_are_the_same_on_every_replay() -> None:
    sim = Simulation(clocked, execution_id="ex-42")
    sim.run()
    output = sim.outcome["output"]
    started = [e["at"] for e in sim.history.events if e["type"] == "WorkflowTaskStarted"]
    assert output["before"] == started[0].replace("Z", "+00:00")
    assert output["after"] == started[1].replace("Z", "+00:00")
    again = replay(clocked, sim.history.events, execution_id="ex-42")
    assert again.outcome == sim.outcome
    other = Simulation(clocked, execution_id="ex-43")
    other.run()
    assert other.outcome["output"]["draws"] != output["draws"]
    assert other.outcome["output"]["uuid"] != output["uuid"]
    assert output["uuid"][14] == "4"  # a version 4 UUID


def test_the_loop_time_is_the_activation_time() -> None:
    async def loop_time(wf: WorkflowContext) -> bool:
        return asyncio.get_running_loop().time() == wf.now().timestamp()

    sim = Simulation(loop_time)
    sim.run()
    assert sim.outcome["output"] is True


# -- changed code ----------------------------------------------------------------------------


async def renamed(wf: WorkflowContext) -> str:
    await wf.step("a")
    await wf.step("b_renamed")
    return "old"


async def added(wf: WorkflowContext) -> str:
    await wf.step("a")
    await wf.step("new_step")
    await wf.step("b")
    return "old"


async def fewer(wf: WorkflowContext) -> str:
    await wf.step("a")
    return "old"


def test_a_renamed_step_is_non_determinism_naming_the_event_and_the_command() -> None:
    sim = Simulation(old_code)
    sim.run()
    completed = [e for e in sim.history.events if e["type"] == "WorkflowTaskCompleted"]
    with pytest.raises(NonDeterminismError) as caught:
        replay(renamed, sim.history.events)
    error = caught.value
    assert (error.event_seq, error.event_type) == (completed[1]["seq"], "WorkflowTaskCompleted")
    assert error.issued is not None and error.issued["function"] == "b_renamed"
    assert error.recorded is not None and error.recorded["function"] == "b"
    assert f"seq {completed[1]['seq']}" in str(error)
    assert "step #2 'b'" in str(error) and "'b_renamed'" in str(error)


def test_an_added_step_is_non_determinism() -> None:
    sim = Simulation(old_code)
    sim.run()
    with pytest.raises(NonDeterminismError, match="step #2 'new_step'") as caught:
        replay(added, sim.history.events)
    assert caught.value.recorded is not None and caught.value.recorded["function"] == "b"


def test_fewer_commands_than_recorded_is_non_determinism() -> None:
    sim = Simulation(old_code)
    sim.run()
    with pytest.raises(NonDeterminismError) as caught:
        replay(fewer, sim.history.events)
    assert caught.value.recorded is not None and caught.value.recorded["function"] == "b"
    assert caught.value.issued == {"type": "complete", "output": "old"}


def test_changed_args_are_not_non_determinism() -> None:
    async def other_args(wf: WorkflowContext) -> str:
        await wf.step("a", extra=1)
        await wf.step("b")
        return "old"

    sim = Simulation(old_code)
    sim.run()
    assert replay(other_args, sim.history.events).outcome == {"type": "complete", "output": "old"}


# -- what workflow code may not do -----------------------------------------------------------


def test_asyncio_sleep_in_workflow_code_fails_the_task_with_a_clear_error() -> None:
    async def sleepy(wf: WorkflowContext) -> None:
        with contextlib.suppress(Exception):  # even caught, the rule is broken: the task fails
            await asyncio.sleep(1)
        await wf.step("a")

    history = History()
    _, started = history.task_started()
    with pytest.raises(WorkflowTaskError, match=r"asyncio\.sleep.*use wf\.sleep"):
        live_commands(sleepy, history, started)


def test_a_timeout_in_workflow_code_fails_the_task_too() -> None:
    async def with_timeout(wf: WorkflowContext) -> None:
        async with asyncio.timeout(5):
            await wf.step("a")

    history = History()
    _, started = history.task_started()
    with pytest.raises(WorkflowTaskError, match=r"use wf\.sleep"):
        live_commands(with_timeout, history, started)


def test_io_in_workflow_code_fails_the_task() -> None:
    async def fetch(wf: WorkflowContext) -> None:
        await asyncio.open_connection("example.com", 80)

    history = History()
    _, started = history.task_started()
    with pytest.raises(WorkflowTaskError, match=r"wf\.step for I/O"):
        live_commands(fetch, history, started)


def test_a_busy_loop_fails_the_task_instead_of_hanging() -> None:
    async def spinning(wf: WorkflowContext) -> None:
        while True:
            await asyncio.sleep(0)

    history = History()
    _, started = history.task_started()
    with pytest.raises(WorkflowTaskError, match="busy loop"):
        live_commands(spinning, history, started, max_callbacks=10_000)


def test_the_workflow_logger_is_silent_while_replaying(caplog: pytest.LogCaptureFixture) -> None:
    async def chatty(wf: WorkflowContext) -> None:
        wf.logger.info("step a at %s", wf.now().isoformat())
        await wf.step("a")
        wf.logger.info("after a")

    sim = Simulation(chatty)
    with caplog.at_level(logging.INFO, logger="cerebelum.workflow.code"):
        sim.run()
    lines = [r.getMessage() for r in caplog.records if r.name == "cerebelum.workflow.code"]
    # The simulation replays the whole history afresh at every task as well: still one line each.
    assert len([line for line in lines if "step a at" in line]) == 2  # the cached run and the fresh one, both live
    assert len([line for line in lines if "after a" in line]) == 2
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cerebelum.workflow.code"):
        replay(chatty, sim.history.events)
    assert [r for r in caplog.records if r.name == "cerebelum.workflow.code"] == []


def test_an_annotated_input_that_does_not_fit_fails_the_workflow() -> None:
    sim = Simulation(w.two_steps, input={"id": "o-1"})  # no amount
    sim.run()
    assert (sim.outcome["type"], sim.outcome["errorType"]) == ("fail", "InvalidInput")
