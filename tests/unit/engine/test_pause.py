"""Pause and resume in the pure core: a paused execution starts nothing new (issue 19)."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase, Reply, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.command_checks import CommandRejected
from cerebelum_operator.engine.ids import WORKFLOW_TASK_STEP, TaskToken

from .simulator import Simulator

LINE = {"timeline": ["a", "b", "c"]}
PARALLEL = {"timeline": [["a", "b"], "c"]}


def shown(sim: Simulator) -> ExecutionPhase:
    return sim.state.display_phase()


def steps_with_tasks(sim: Simulator) -> set[str]:
    return {TaskToken.parse(token).step for token in sim.tasks}


def test_a_pause_takes_back_a_queued_task_and_a_resume_schedules_it_again_with_a_new_token() -> None:
    sim = Simulator.start(LINE)
    queued = sim.task("a").token

    assert sim.send(cmd.Pause("maintenance", "alice")) == Reply.ACCEPTED

    assert queued in sim.cancelled and not sim.tasks
    assert sim.state.steps["a"].phase == StepPhase.HELD
    assert shown(sim) == ExecutionPhase.PAUSED
    assert sim.state.holds["user"].reason == "maintenance" and sim.state.holds["user"].by == "alice"
    assert sim.send(cmd.TaskStarted(queued, "w1")) == Reply.STALE  # a lease in flight is refused

    sim.send(cmd.Resume("alice"))

    again = sim.task("a")
    assert again.token != queued and again.attempt == 1
    assert shown(sim) == ExecutionPhase.RUNNING
    sim.run("a")
    sim.run("b")
    sim.run("c")
    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert sim.kinds().count("ExecutionPaused") == sim.kinds().count("ExecutionResumed") == 1


def test_a_running_step_finishes_while_paused_and_the_next_step_waits_held_until_the_resume() -> None:
    sim = Simulator.start(LINE)
    task = sim.task("a")
    sim.send(cmd.TaskStarted(task.token, "w1"))

    sim.send(cmd.Pause())
    assert task.token not in sim.cancelled  # running: it finishes
    sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess({"a": 1}), worker_id="w1"))

    assert sim.state.steps["a"].phase == StepPhase.SUCCEEDED
    assert sim.state.steps["b"].phase == StepPhase.HELD and not sim.tasks
    assert sim.state.current_steps() == ["b"]
    assert shown(sim) == ExecutionPhase.PAUSED

    sim.send(cmd.Resume())
    assert steps_with_tasks(sim) == {"b"}


def test_a_retry_taken_back_by_a_pause_keeps_its_attempt_and_its_backoff() -> None:
    spec = {"timeline": ["a"], "steps": {"a": {"retry": {"maxAttempts": 3, "initialInterval": "10s"}}}}
    sim = Simulator.start(spec)
    sim.run("a", cmd.OutcomeFailure("Boom", "no"))
    retry = sim.task("a")
    assert retry.attempt == 2
    due = retry.visible_at_ms

    sim.send(cmd.Pause())
    sim.now_ms += 1_000
    sim.send(cmd.Resume())

    again = sim.task("a")
    assert (again.attempt, again.visible_at_ms) == (2, due)
    assert sim.state.steps["a"].total_attempts == 2  # held and scheduled again is one attempt

    sim.send(cmd.Pause())
    sim.now_ms = due + 60_000
    sim.send(cmd.Resume())
    assert sim.task("a").visible_at_ms == sim.now_ms  # past its backoff: at once


def test_a_retry_that_comes_while_paused_is_held_with_its_attempt() -> None:
    spec = {"timeline": ["a"], "steps": {"a": {"retry": {"maxAttempts": 3, "initialInterval": "1s"}}}}
    sim = Simulator.start(spec)
    task = sim.task("a")
    sim.send(cmd.TaskStarted(task.token, "w1"))
    sim.send(cmd.Pause())
    sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeFailure("Boom", "no"), worker_id="w1"))

    assert sim.state.held_steps["a"].attempt == 2 and not sim.tasks
    sim.send(cmd.Resume())
    assert sim.task("a").attempt == 2


def test_timers_fire_while_paused_and_the_step_after_a_sleep_is_held() -> None:
    spec = {"timeline": ["nap", "after"], "steps": {"nap": {"timer": {"duration": "5s"}}}}
    sim = Simulator.start(spec)
    sim.send(cmd.Pause())
    sim.fire_timers()

    assert sim.state.steps["nap"].phase == StepPhase.SUCCEEDED
    assert sim.state.steps["after"].phase == StepPhase.HELD
    sim.send(cmd.Resume())
    assert steps_with_tasks(sim) == {"after"}


def test_an_approval_can_be_given_while_paused_and_what_follows_it_waits() -> None:
    spec = {"timeline": ["ok", "ship"], "steps": {"ok": {"approval": {"timeout": "1h"}}}}
    sim = Simulator.start(spec)
    sim.send(cmd.Pause())
    sim.send(cmd.Approve("ok", "bob"))

    assert sim.state.steps["ok"].phase == StepPhase.SUCCEEDED
    assert sim.state.steps["ship"].phase == StepPhase.HELD


def test_every_member_of_a_parallel_group_reached_while_paused_is_scheduled_on_resume_in_order() -> None:
    sim = Simulator.start(PARALLEL)
    sim.send(cmd.Pause())
    assert list(sim.state.held_steps) == ["a", "b"]

    sim.send(cmd.Resume())
    assert steps_with_tasks(sim) == {"a", "b"}
    scheduled = [r.event.step for r in sim.history if r.event.kind == "StepScheduled"]  # type: ignore[attr-defined]
    assert scheduled[-2:] == ["a", "b"]


def test_two_sources_hold_one_execution_and_it_resumes_only_when_both_let_go() -> None:
    sim = Simulator.start(LINE)
    sim.send(cmd.Pause("by hand", "alice"))
    sim.send(cmd.Pause("spec.paused", "operator", source="Execution"))

    sim.send(cmd.Resume("alice"))
    assert not sim.tasks and shown(sim) == ExecutionPhase.PAUSED
    assert set(sim.state.holds) == {"Execution"}

    sim.send(cmd.Resume("operator", source="Execution"))
    assert steps_with_tasks(sim) == {"a"}


def test_a_second_pause_and_a_resume_of_what_is_not_paused_are_duplicates_that_record_nothing() -> None:
    sim = Simulator.start(LINE)
    assert sim.send(cmd.Resume()) == Reply.DUPLICATE
    sim.send(cmd.Pause())
    before = len(sim.history)
    assert sim.send(cmd.Pause()) == Reply.DUPLICATE
    assert len(sim.history) == before


def test_an_ended_execution_cannot_be_paused() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    sim.run("a")
    with pytest.raises(CommandRejected, match="has ended"):
        sim.send(cmd.Pause())


def test_a_paused_execution_can_be_cancelled_and_its_held_steps_are_cancelled() -> None:
    sim = Simulator.start(PARALLEL)
    sim.send(cmd.Pause())
    sim.send(cmd.Cancel("no longer needed"))

    assert sim.state.phase == ExecutionPhase.CANCELLED
    assert {sim.state.steps[n].phase for n in ("a", "b")} == {StepPhase.CANCELLED}
    assert not sim.state.held_steps
    assert sim.send(cmd.Resume()) == Reply.DUPLICATE


def fan_spec() -> dict[str, Any]:
    return {
        "timeline": ["fan"],
        "steps": {"fan": {"forEach": {"items": "input.items", "concurrency": 2}, "args": {"n": "item"}}},
    }


def item_tokens(sim: Simulator) -> dict[int, str]:
    return {parsed.item: token for token in sim.tasks if (parsed := TaskToken.parse(token)).item is not None}


def test_a_fan_out_queues_no_new_item_while_paused_and_the_held_items_get_tasks_on_resume() -> None:
    sim = Simulator.start(fan_spec(), {"items": [1, 2, 3, 4]})
    first = item_tokens(sim)
    assert set(first) == {0, 1}
    for item in (0, 1):
        sim.send(cmd.TaskStarted(first[item], "w1"))
    sim.send(cmd.Pause())
    sim.send(cmd.TaskCompleted(first[0], cmd.OutcomeSuccess(10), worker_id="w1"))

    assert set(item_tokens(sim)) == {1}  # item 2 is kept, with no task
    sim.send(cmd.Resume())
    assert set(item_tokens(sim)) == {1, 2}

    for item, token in item_tokens(sim).items():
        if item == 2:
            sim.send(cmd.TaskStarted(token, "w1"))
        sim.send(cmd.TaskCompleted(token, cmd.OutcomeSuccess(item * 10), worker_id="w1"))
    last = item_tokens(sim)[3]
    sim.send(cmd.TaskStarted(last, "w1"))
    sim.send(cmd.TaskCompleted(last, cmd.OutcomeSuccess(30), worker_id="w1"))
    assert sim.state.phase == ExecutionPhase.SUCCEEDED


CODE = {"code": {"function": "provision", "taskQueue": "brains"}, "taskQueue": "hands"}


def test_a_code_workflow_s_queued_workflow_task_is_taken_back_and_scheduled_again_on_resume() -> None:
    sim = Simulator.start(CODE, {"region": "ams3"})
    queued = sim.task(WORKFLOW_TASK_STEP).token

    sim.send(cmd.Pause())
    assert queued in sim.cancelled and sim.state.workflow_task is None and sim.state.code_pending
    sim.send(cmd.Resume())

    assert sim.task(WORKFLOW_TASK_STEP).token != queued


def test_the_history_of_a_pause_replays_to_the_same_state() -> None:
    sim = Simulator.start(PARALLEL)
    task = sim.task("a")
    sim.send(cmd.TaskStarted(task.token, "w1"))
    sim.send(cmd.Pause("why", "who"))
    sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess(1), worker_id="w1"))

    replayed = sim.replayed()
    assert replayed.held_steps == sim.state.held_steps
    assert replayed.holds == sim.state.holds
    assert replayed.steps["b"].phase == StepPhase.HELD
    sim.send(cmd.Resume())
    assert sim.replayed().held_steps == {} and steps_with_tasks(sim) == {"b"}


def test_the_events_of_a_pause_say_their_format_is_3() -> None:
    sim = Simulator.start(LINE)
    sim.send(cmd.Pause())
    sim.send(cmd.Resume())
    formats = {r.event.kind: r.event.format_version() for r in sim.history}
    assert formats["ExecutionPaused"] == formats["ExecutionResumed"] == 3
    assert formats["StepScheduled"] == 1
