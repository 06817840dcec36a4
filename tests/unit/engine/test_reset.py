"""Reset to a step in the pure core: a new run that keeps the results before that step (issue 19)."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase, ExecutionState, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.command_checks import CommandRejected
from cerebelum_operator.engine.ids import TaskToken
from cerebelum_operator.engine.reset import reset_point
from cerebelum_operator.model import compile_workflow

from .simulator import Simulator

LINE: dict[str, Any] = {
    "timeline": ["fetch", "charge", "ship"],
    "steps": {"ship": {"args": {"paid": "steps.charge.ok"}}},
}


def failed_at_charge() -> Simulator:
    sim = Simulator.start(LINE, {"order": 7})
    sim.run("fetch", cmd.OutcomeSuccess({"items": 3}))
    sim.run("charge", cmd.OutcomeFailure("CardDeclined", "no", retryable=False))
    assert sim.state.phase == ExecutionPhase.FAILED
    return sim


def reset_of(old: Simulator, step: str, spec: dict[str, Any] | None = None, new_id: str = "ex2") -> Simulator:
    current = compile_workflow(spec or LINE)
    point = reset_point(execution_id="ex1", ran_on=old.definition, history=old.history, current=current, step=step)
    sim = Simulator(current, ExecutionState(execution_id=new_id))
    sim.send(cmd.Start("wf", old.state.input, reset=point))
    return sim


def scheduled(sim: Simulator) -> set[str]:
    return {TaskToken.parse(token).step for token in sim.tasks}


def test_a_reset_run_starts_at_the_step_and_carries_the_results_before_it() -> None:
    new = reset_of(failed_at_charge(), "charge")

    assert scheduled(new) == {"charge"}
    assert new.state.steps["fetch"].phase == StepPhase.SUCCEEDED
    assert new.state.results["fetch"] == {"items": 3}
    assert new.state.reset_from == "ex1"
    assert new.kinds()[:2] == ["ExecutionStarted", "ExecutionReset"]

    new.run("charge", cmd.OutcomeSuccess({"ok": True}))
    assert new.task("ship").arguments["args"] == {"paid": True}
    new.run("ship")
    assert new.state.phase == ExecutionPhase.SUCCEEDED


def test_a_reset_to_the_first_step_runs_everything_again_with_the_same_input() -> None:
    new = reset_of(failed_at_charge(), "fetch")
    assert scheduled(new) == {"fetch"} and new.state.input == {"order": 7}
    assert new.state.results == {}


def test_a_reset_to_a_later_step_forgets_the_results_of_the_steps_from_it_on() -> None:
    old = Simulator.start(LINE, {"order": 7})
    old.run("fetch", cmd.OutcomeSuccess({"items": 3}))
    old.run("charge", cmd.OutcomeSuccess({"ok": True}))
    old.run("ship", cmd.OutcomeSuccess({"tracking": "x"}))

    new = reset_of(old, "charge")
    assert set(new.state.results) == {"fetch"}
    assert new.state.steps.get("ship") is None or new.state.steps["ship"].phase == StepPhase.PENDING


def test_the_last_time_a_loop_reached_the_step_is_the_point_and_variables_are_as_they_were_then() -> None:
    spec: dict[str, Any] = {
        "vars": {"round": 0},
        "timeline": ["count", "check"],
        "steps": {"count": {"set": {"round": "vars.round + 1"}}},
        "branch": {"check": [{"when": "vars.round < 3", "goto": "count", "maxIterations": 5}]},
    }
    old = Simulator.start(spec)
    for _ in range(3):
        old.run("count")
        old.run("check")
    assert old.state.phase == ExecutionPhase.SUCCEEDED and old.state.vars["round"] == 3

    new = reset_of(old, "check", spec)
    assert new.state.vars["round"] == 3  # "count" had run three times when "check" was last reached
    assert scheduled(new) == {"check"}


def test_a_parallel_group_runs_whole_again_and_a_skipped_step_before_stays_skipped() -> None:
    spec: dict[str, Any] = {
        "timeline": ["maybe", ["a", "b"], "end"],
        "steps": {"maybe": {"when": "input.never == true"}},
    }
    old = Simulator.start(spec, {"never": False})
    old.run("a")
    old.run("b", cmd.OutcomeFailure("Boom", "no", retryable=False))

    new = reset_of(old, "b", spec)
    assert scheduled(new) == {"a", "b"}
    assert new.state.steps["maybe"].phase == StepPhase.SKIPPED


def test_a_step_the_run_never_reached_or_one_not_in_the_timeline_is_refused() -> None:
    old = failed_at_charge()
    with pytest.raises(CommandRejected, match="never reached step 'ship'"):
        reset_of(old, "ship")
    with pytest.raises(CommandRejected, match="'nope' is not a step"):
        reset_of(old, "nope")


def test_a_timeline_changed_before_the_step_is_refused_but_a_changed_setting_is_taken() -> None:
    old = failed_at_charge()
    changed = {"timeline": ["warmup", "fetch", "charge", "ship"]}
    with pytest.raises(CommandRejected, match="timeline before 'charge' changed"):
        reset_of(old, "charge", changed)

    fixed = {**LINE, "steps": {**LINE["steps"], "charge": {"retry": {"maxAttempts": 3}}}}
    new = reset_of(old, "charge", fixed)
    assert scheduled(new) == {"charge"}


def test_code_workflows_cannot_be_reset() -> None:
    code = {"code": {"function": "provision", "taskQueue": "brains"}, "taskQueue": "hands"}
    old = Simulator.start(code)
    with pytest.raises(CommandRejected, match="code workflow"):
        reset_point(execution_id="ex1", ran_on=old.definition, history=old.history, current=old.definition, step="x")


def test_a_reset_run_replays_to_the_same_state() -> None:
    new = reset_of(failed_at_charge(), "charge")
    replayed = new.replayed()
    assert replayed.results == new.state.results
    assert replayed.position == new.state.position
    assert replayed.steps["fetch"].phase == StepPhase.SUCCEEDED
