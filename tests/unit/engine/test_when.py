"""`steps.<name>.when`: a step runs only when its condition holds as it is reached (issue 16, item 1)."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model import WorkflowInvalid, compile_workflow

from .simulator import Simulator


def phase(sim: Simulator) -> ExecutionPhase:
    return sim.state.phase


def step_phase(sim: Simulator, name: str) -> StepPhase:
    return sim.state.steps[name].phase


def scheduled(sim: Simulator) -> set[str]:
    return {t.step for t in sim.tasks.values()}


def test_a_step_whose_condition_is_false_is_skipped_and_recorded_and_the_next_one_runs() -> None:
    sim = Simulator.start({"timeline": ["a", "b", "c"], "steps": {"b": {"when": "input.express"}}}, {"express": False})
    sim.run("a")

    assert scheduled(sim) == {"c"}
    assert step_phase(sim, "b") == StepPhase.SKIPPED
    assert "StepSkipped" in sim.kinds()
    sim.run("c")
    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert "b" not in sim.state.results
    assert sim.replayed() == sim.state


def test_a_condition_sees_earlier_results_and_a_true_one_runs_the_step() -> None:
    spec = {"timeline": ["a", "b"], "steps": {"b": {"when": "steps.a.amount > 100"}}}
    sim = Simulator.start(spec)
    sim.run("a", cmd.OutcomeSuccess({"amount": 500}))

    assert scheduled(sim) == {"b"}
    assert "StepSkipped" not in sim.kinds()


def test_members_of_a_parallel_group_each_have_their_own_condition() -> None:
    spec: dict[str, Any] = {
        "timeline": [["eu", "us", "asia"], "report"],
        "steps": {"eu": {"when": "'eu' in input.regions"}, "us": {"when": "'us' in input.regions"}},
    }
    sim = Simulator.start(spec, {"regions": ["us"]})

    assert scheduled(sim) == {"us", "asia"}
    assert step_phase(sim, "eu") == StepPhase.SKIPPED
    sim.run("us")
    sim.run("asia")
    sim.run("report")
    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert sim.replayed() == sim.state


def test_positions_whose_steps_are_all_skipped_are_passed_at_once_to_the_end() -> None:
    spec = {
        "timeline": ["a", ["b", "c"], "d"],
        "steps": {name: {"when": "input.full"} for name in ("b", "c", "d")},
    }
    sim = Simulator.start(spec, {"full": False})
    sim.run("a")

    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert [step_phase(sim, n) for n in ("b", "c", "d")] == [StepPhase.SKIPPED] * 3
    assert sim.state.output is None, "the last step did not run: the execution has no output"
    assert sim.replayed() == sim.state


def test_a_first_step_can_be_skipped_too() -> None:
    sim = Simulator.start({"timeline": ["a", "b"], "steps": {"a": {"when": "false"}}})
    assert scheduled(sim) == {"b"}


def test_in_a_loop_the_condition_is_evaluated_again_each_time_the_step_is_reached() -> None:
    spec = {
        "timeline": ["a", "b", "c"],
        "steps": {"b": {"when": "has(steps.a.again)"}},
        "branch": {"c": [{"when": "!has(steps.a.again)", "goto": "a", "maxIterations": 1}]},
    }
    sim = Simulator.start(spec)
    sim.run("a", cmd.OutcomeSuccess({}))
    assert step_phase(sim, "b") == StepPhase.SKIPPED
    sim.run("c")
    sim.run("a", cmd.OutcomeSuccess({"again": True}))

    assert scheduled(sim) == {"b"}
    sim.run("b")
    sim.run("c")
    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert sim.replayed() == sim.state


def test_a_condition_that_fails_at_run_time_fails_the_execution_naming_its_place() -> None:
    sim = Simulator.start({"timeline": ["a", "b"], "steps": {"b": {"when": "steps.a.missing > 1"}}})
    sim.run("a")

    assert phase(sim) == ExecutionPhase.FAILED
    assert "steps.b.when" in (sim.state.error or "")


def test_an_approval_or_timer_step_with_a_false_condition_waits_for_nothing() -> None:
    spec = {
        "timeline": ["gate", "nap"],
        "steps": {"gate": {"approval": {}, "when": "false"}, "nap": {"timer": {"duration": "1h"}, "when": "false"}},
    }
    sim = Simulator.start(spec)

    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert sim.timers == {} and sim.state.approvals == {}


@pytest.mark.parametrize(
    ("when", "problem"),
    [
        ("inptu.x", "steps.b.when: unknown name 'inptu'"),
        ("result.ok", "steps.b.when: unknown name 'result'"),
        ("steps.nope.x", "steps.b.when: "),
    ],
)
def test_a_condition_using_what_it_cannot_see_is_refused_at_apply(when: str, problem: str) -> None:
    with pytest.raises(WorkflowInvalid) as refused:
        compile_workflow({"timeline": ["a", "b"], "steps": {"b": {"when": when}}})
    assert problem in str(refused.value)
