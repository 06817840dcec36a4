"""Timer steps (`steps.<name>.timer`) and the workflow `timeout` (issue 16, item 4 and 6)."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase, Reply, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine import events as ev
from cerebelum_operator.model import WorkflowInvalid, compile_workflow

from .simulator import Simulator

HOUR_MS = 3_600_000


def phase(sim: Simulator) -> ExecutionPhase:
    return sim.state.phase


def step_phase(sim: Simulator, name: str) -> StepPhase:
    return sim.state.steps[name].phase


def timer_spec(timer: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"timeline": ["a", "wait", "b"], "steps": {"wait": {"timer": timer}}, **extra}


def test_a_timer_step_waits_its_duration_without_a_worker_then_the_timeline_goes_on() -> None:
    sim = Simulator.start(timer_spec({"duration": "1h"}))
    sim.run("a")
    started_at = sim.now_ms

    assert not any(t.step == "wait" for t in sim.tasks.values()), "no worker task for a timer step"
    assert step_phase(sim, "wait") == StepPhase.SLEEPING
    assert sim.state.display_phase() == ExecutionPhase.SLEEPING
    assert sim.state.wake_at_ms() == started_at + HOUR_MS
    assert list(sim.timers.values()) == [started_at + HOUR_MS]

    sim.fire_timers()
    assert step_phase(sim, "wait") == StepPhase.SUCCEEDED
    assert sim.state.results["wait"] == {"wokeAt": "1970-01-01T01:16:40.000Z"}
    sim.run("b")
    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert sim.replayed() == sim.state


def test_a_timer_until_a_cel_timestamp_wakes_then_and_one_in_the_past_wakes_at_once() -> None:
    sim = Simulator.start(timer_spec({"until": "timestamp(input.at)"}), {"at": "1970-01-02T00:00:00Z"})
    sim.run("a")
    assert list(sim.timers.values()) == [86_400_000]

    past = Simulator.start(timer_spec({"until": "input.at"}), {"at": "1970-01-01T00:00:00+00:00"})
    past.run("a")
    assert list(past.timers.values()) == [past.now_ms]


def test_a_timer_until_something_that_is_not_a_timestamp_fails_the_execution_naming_the_place() -> None:
    sim = Simulator.start(timer_spec({"until": "input.at"}), {"at": 5})
    sim.run("a")

    assert phase(sim) == ExecutionPhase.FAILED
    assert "steps.wait.timer.until" in (sim.state.error or "")
    assert "not a timestamp" in (sim.state.error or "")
    assert sim.timers == {}


def test_cancelling_during_a_timer_step_stops_its_timer_and_cancels_the_step() -> None:
    sim = Simulator.start(timer_spec({"duration": "1h"}))
    sim.run("a")
    sim.send(cmd.Cancel("enough"))

    assert sim.timers == {}
    assert step_phase(sim, "wait") == StepPhase.CANCELLED
    assert sim.replayed() == sim.state


def test_a_timer_beside_work_in_a_parallel_group_lets_the_group_end_when_both_are_done() -> None:
    sim = Simulator.start({"timeline": [["work", "pause"]], "steps": {"pause": {"timer": {"duration": "5s"}}}})
    sim.run("work")
    assert phase(sim) == ExecutionPhase.RUNNING
    sim.fire_timers()
    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert set(sim.state.output) == {"work", "pause"}


def test_a_branch_rule_on_a_timer_step_loops_back_over_it_within_its_bound() -> None:
    spec = timer_spec({"duration": "1m"}, branch={"wait": [{"when": "input.loop", "goto": "a", "maxIterations": 2}]})
    sim = Simulator.start(spec, {"loop": True})
    for _ in range(3):
        sim.run("a")
        sim.fire_timers()
    sim.run("b")

    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert sim.state.steps["wait"].run == 3
    assert sim.replayed() == sim.state


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        ({"timer": {}}, "steps.wait.timer: a timer needs exactly one of 'duration' or 'until'"),
        ({"timer": {"duration": "1s", "until": "input.at"}}, "a timer needs exactly one of"),
        ({"timer": {"duration": "1s"}, "approval": {}}, "a step is a timer or an approval, not both"),
        ({"timer": {"duration": "1s"}, "retry": {"maxAttempts": 2}}, "steps.wait.retry: a timer step has no task"),
        ({"timer": {"duration": "1s"}, "taskQueue": "q"}, "steps.wait.taskQueue: a timer step has no task"),
        ({"timer": {"until": "inptu.at"}}, "steps.wait.timer.until: unknown name 'inptu'"),
    ],
)
def test_a_timer_step_the_engine_cannot_honour_is_refused_with_its_place(step: dict[str, Any], problem: str) -> None:
    with pytest.raises(WorkflowInvalid) as refused:
        compile_workflow({"timeline": ["wait"], "steps": {"wait": step}})
    assert problem in str(refused.value)


def test_the_workflow_timeout_fails_an_unfinished_execution_and_cancels_what_is_in_flight() -> None:
    sim = Simulator.start({"timeline": ["a", "b"], "timeout": "1h"})
    started = sim.history[0].event
    assert isinstance(started, ev.ExecutionStarted) and started.deadline_ms == sim.now_ms + HOUR_MS
    sim.run("a")
    task = sim.task("b").token

    sim.fire_timers()
    assert phase(sim) == ExecutionPhase.FAILED
    assert (sim.state.error or "").startswith("WorkflowTimeout: the execution did not finish within")
    assert task in sim.cancelled
    assert step_phase(sim, "b") == StepPhase.CANCELLED
    assert sim.replayed() == sim.state


def test_an_execution_that_ends_in_time_cancels_its_deadline_timer() -> None:
    sim = Simulator.start({"timeline": ["a"], "timeout": "1h"})
    assert len(sim.timers) == 1
    sim.run("a")

    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert sim.timers == {}


def test_a_redrive_starts_the_workflow_timeout_afresh_and_the_old_deadline_is_stale() -> None:
    spec = {"timeline": ["a"], "timeout": "1h", "defaults": {"retry": {"maxAttempts": 1}}}
    sim = Simulator.start(spec)
    old_timer = next(iter(sim.timers))
    sim.run("a", cmd.OutcomeFailure("Boom", "no"))
    assert phase(sim) == ExecutionPhase.FAILED and sim.timers == {}

    sim.now_ms += 2 * HOUR_MS
    sim.send(cmd.Redrive(next(iter(sim.dead_letters))))
    assert list(sim.timers.values()) == [sim.now_ms + HOUR_MS]
    assert sim.send(cmd.TimerFired(old_timer)) == Reply.STALE
    assert phase(sim) == ExecutionPhase.RUNNING
    sim.run("a")
    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert sim.replayed() == sim.state


@pytest.mark.parametrize("timeout", ["0s", "0ms"])
def test_a_workflow_timeout_of_zero_is_refused(timeout: str) -> None:
    with pytest.raises(WorkflowInvalid, match="timeout: must be longer than 0s"):
        compile_workflow({"timeline": ["a"], "timeout": timeout})
