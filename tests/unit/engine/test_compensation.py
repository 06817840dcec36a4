"""Compensation (saga) and finally steps: how an execution ends (issue 16, item 4)."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import CommandRejected, ExecutionPhase, ExecutionState, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine import events as ev
from cerebelum_operator.model import WorkflowInvalid, compile_workflow

from .simulator import Simulator

BOOM = cmd.OutcomeFailure("Boom", "it broke", retryable=False)
TRIP: dict[str, Any] = {
    "timeline": ["flight", "hotel", "car", "pay"],
    "steps": {
        "flight": {"compensate": "cancel-flight"},
        "hotel": {"compensate": "cancel-hotel"},
        "car": {"compensate": "cancel-car"},
    },
    "finally": ["notify"],
}


def phase(sim: Simulator) -> ExecutionPhase:
    return sim.state.phase


def scheduled_steps(sim: Simulator) -> list[str]:
    return [r.event.step for r in sim.history if isinstance(r.event, ev.StepScheduled)]


def test_a_failure_runs_the_compensations_of_the_completed_steps_latest_first_then_finally() -> None:
    sim = Simulator.start(TRIP)
    sim.run("flight")
    sim.run("hotel")
    sim.run("car", BOOM)  # car never completed: nothing of it to undo

    assert phase(sim) == ExecutionPhase.RUNNING, "still ending"
    for handler in ("cancel-hotel", "cancel-flight", "notify"):
        assert {t.step for t in sim.tasks.values()} == {handler}, "one at a time, in order"
        sim.run(handler)

    assert phase(sim) == ExecutionPhase.FAILED
    assert (sim.state.error or "").startswith("step 'car' failed: Boom: it broke")
    ending = next(r.event for r in sim.history if isinstance(r.event, ev.ExecutionEnding))
    assert ending == ev.ExecutionEnding(
        "Failed", ["cancel-hotel", "cancel-flight", "notify"], sim.state.error, "car", None, None, 2
    )
    assert scheduled_steps(sim).count("cancel-hotel") == 1
    assert sim.replayed() == sim.state


def test_a_success_runs_only_the_finally_steps_and_keeps_its_output() -> None:
    sim = Simulator.start(TRIP)
    for step in ("flight", "hotel", "car"):
        sim.run(step)
    sim.run("pay", cmd.OutcomeSuccess({"paid": 120}))
    assert {t.step for t in sim.tasks.values()} == {"notify"}
    assert sim.task("notify").arguments["outcome"] == {
        "phase": "Succeeded",
        "reason": None,
        "step": None,
        "output": {"paid": 120},
    }
    sim.run("notify")

    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert sim.state.output == {"paid": 120}
    assert not any(s.startswith("cancel-") for s in scheduled_steps(sim))


def test_a_cancel_runs_the_compensations_and_a_second_cancel_stops_them() -> None:
    sim = Simulator.start(TRIP)
    sim.run("flight")
    hotel = sim.task("hotel").token
    sim.send(cmd.Cancel("customer changed their mind"))

    assert hotel in sim.cancelled
    assert sim.state.steps["hotel"].phase == StepPhase.CANCELLED
    assert {t.step for t in sim.tasks.values()} == {"cancel-flight"}
    assert sim.task("cancel-flight").arguments["outcome"]["phase"] == "Cancelled"
    sim.send(cmd.Cancel("now"))

    assert phase(sim) == ExecutionPhase.CANCELLED
    assert sim.state.error == "now (before its compensation and finally steps finished)"
    assert sim.tasks == {}


def test_a_compensation_is_retried_by_its_policy_and_one_that_fails_for_good_is_said_and_the_rest_run() -> None:
    spec = dict(TRIP, defaults={"retry": {"maxAttempts": 2, "initialInterval": "1s"}})
    sim = Simulator.start(spec)
    sim.run("flight")
    sim.run("hotel")
    sim.run("car", BOOM)
    sim.run("cancel-hotel", cmd.OutcomeFailure("Down", "hotel API down", retryable=True))
    assert sim.task("cancel-hotel").attempt == 2
    sim.run("cancel-hotel", cmd.OutcomeFailure("Down", "hotel API down", retryable=True))
    sim.run("cancel-flight")
    sim.run("notify")

    assert phase(sim) == ExecutionPhase.FAILED
    assert (sim.state.error or "").endswith("; then its compensation 'cancel-hotel' failed: Down: hotel API down")
    assert sim.dead_letters, "the failed step's dead letter is kept"
    with pytest.raises(CommandRejected, match="ran its compensations"):
        sim.send(cmd.Redrive(next(iter(sim.dead_letters))))


def test_a_step_completed_in_several_loop_passes_is_compensated_once() -> None:
    spec = {
        "timeline": ["reserve", "check", "pay"],
        "steps": {"reserve": {"compensate": "release"}},
        "branch": {"check": [{"when": "input.again", "goto": "reserve", "maxIterations": 2}]},
    }
    sim = Simulator.start(spec, {"again": True})
    for _ in range(3):
        sim.run("reserve")
        sim.run("check")
    sim.run("pay", BOOM)
    sim.run("release")

    assert phase(sim) == ExecutionPhase.FAILED
    assert scheduled_steps(sim).count("release") == 1


def test_the_workflow_timeout_runs_the_compensations_too() -> None:
    sim = Simulator.start(dict(TRIP, timeout="1h"))
    sim.run("flight")
    sim.fire_timers()
    assert {t.step for t in sim.tasks.values()} == {"cancel-flight"}
    assert sim.timers == {}, "the deadline is disarmed while the handlers run"
    sim.run("cancel-flight")
    sim.run("notify")
    assert (sim.state.error or "").startswith("WorkflowTimeout")


def test_a_failed_finally_step_fails_an_execution_that_had_succeeded() -> None:
    spec = {"timeline": ["a"], "finally": ["notify"], "defaults": {"retry": {"maxAttempts": 1}}}
    sim = Simulator.start(spec)
    sim.run("a")
    sim.run("notify", BOOM)
    assert phase(sim) == ExecutionPhase.FAILED
    assert sim.state.error == "the execution succeeded, but its finally step 'notify' failed: Boom: it broke"


def test_without_compensations_a_failed_execution_runs_its_finally_steps_again_after_a_redrive() -> None:
    spec = {"timeline": ["a"], "finally": ["notify"], "defaults": {"retry": {"maxAttempts": 1}}}
    sim = Simulator.start(spec)
    sim.run("a", BOOM)
    sim.run("notify")
    assert phase(sim) == ExecutionPhase.FAILED
    sim.send(cmd.Redrive(next(iter(sim.dead_letters))))
    sim.run("a")
    sim.run("notify")
    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert scheduled_steps(sim).count("notify") == 2
    assert sim.replayed() == sim.state


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (
            {"timeline": ["a", "b"], "steps": {"a": {"compensate": "b"}}},
            "steps.a.compensate: 'b' is a step of the timeline",
        ),
        ({"timeline": ["a"], "finally": ["a"]}, "finally[0]: 'a' is a step of the timeline"),
        (
            {"timeline": ["a", "b"], "steps": {"a": {"compensate": "undo"}, "b": {"compensate": "undo"}}},
            "'undo' is already a compensation or finally step",
        ),
        (
            {"timeline": ["a"], "finally": ["n"], "steps": {"n": {"approval": {}}}},
            "steps.n.approval: a compensation or finally step runs a worker's task only",
        ),
        (
            {"timeline": ["a"], "finally": ["n"], "branch": {"n": [{"when": "true", "goto": "a"}]}},
            "branch.n: 'n' is a compensation or finally step: it has no branch rules",
        ),
    ],
)
def test_handlers_the_engine_cannot_honour_are_refused(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(WorkflowInvalid) as refused:
        compile_workflow(spec)
    assert problem in str(refused.value)


def test_errors_continued_past_cannot_make_later_tasks_carry_more_than_the_limit() -> None:
    names = [f"s{i}" for i in range(40)]
    spec = {"timeline": [names, "after"], "diverge": {n: [{"when": "true", "then": "continue"}] for n in names}}
    sim = Simulator(compile_workflow(spec), ExecutionState(execution_id="ex1"), max_task_bytes=64 * 1024)
    sim.send(cmd.Start("wf", None))
    for name in names:
        if sim.state.phase.terminal:
            break
        sim.run(name, cmd.OutcomeFailure("Boom", "x" * 4000))

    assert phase(sim) == ExecutionPhase.FAILED
    assert (sim.state.error or "").startswith("ArgumentsTooLarge: step ")
    assert sim.state.carried_bytes <= 64 * 1024
