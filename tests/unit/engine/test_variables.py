"""Workflow variables: `vars` declared with initial values, assigned by a step's `set` (issue 16, item 5)."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine import events as ev
from cerebelum_operator.model import WorkflowInvalid, compile_workflow, limits

from .simulator import Simulator

COUNTER: dict[str, Any] = {
    "timeline": ["work", "check", "done"],
    "vars": {"count": 0, "log": []},
    "steps": {"work": {"set": {"count": "vars.count + 1", "log": "vars.log + [result.item]"}}},
    "branch": {"check": [{"when": "vars.count < 3", "goto": "work", "maxIterations": 10}]},
    "output": "vars",
}


def phase(sim: Simulator) -> ExecutionPhase:
    return sim.state.phase


def test_a_counter_carried_across_backward_jumps_ends_the_loop_by_its_own_condition() -> None:
    sim = Simulator.start(COUNTER)
    for item in ("a", "b", "c"):
        sim.run("work", cmd.OutcomeSuccess({"item": item}))
        sim.run("check")
    sim.run("done")

    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert sim.state.output == {"count": 3, "log": ["a", "b", "c"]}
    assert [r.event for r in sim.history if isinstance(r.event, ev.VariablesSet)][-1] == ev.VariablesSet(
        "work", {"count": 3, "log": ["a", "b", "c"]}
    )
    assert sim.state.jump_limits == {}, "the loop ended by its condition, not its bound"
    assert sim.replayed() == sim.state


def test_steps_receive_the_variables_in_their_arguments_only_when_the_workflow_declares_some() -> None:
    sim = Simulator.start(COUNTER)
    assert sim.task("work").arguments["vars"] == {"count": 0, "log": []}
    sim.run("work", cmd.OutcomeSuccess({"item": "a"}))
    assert sim.task("check").arguments["vars"] == {"count": 1, "log": ["a"]}

    plain = Simulator.start({"timeline": ["a"]})
    assert "vars" not in plain.task("a").arguments


def test_every_assignment_of_a_step_sees_the_variables_as_they_were_before_it() -> None:
    spec = {"timeline": ["swap"], "vars": {"x": 1, "y": 2}, "steps": {"swap": {"set": {"x": "vars.y", "y": "vars.x"}}}}
    sim = Simulator.start(spec)
    sim.run("swap")
    assert sim.state.vars == {"x": 2, "y": 1}


def test_a_result_the_diverge_rules_retry_assigns_nothing() -> None:
    spec = {
        "timeline": ["poll"],
        "vars": {"seen": 0},
        "steps": {"poll": {"set": {"seen": "vars.seen + 1"}}},
        "diverge": {"poll": [{"match": {"result": {"ready": False}}, "then": "retry"}]},
        "defaults": {"retry": {"maxAttempts": 3, "initialInterval": "1s"}},
    }
    sim = Simulator.start(spec)
    sim.run("poll", cmd.OutcomeSuccess({"ready": False}))
    assert sim.state.vars == {"seen": 0}
    sim.run("poll", cmd.OutcomeSuccess({"ready": True}))
    assert sim.state.vars == {"seen": 1}


def test_an_approval_sets_variables_from_its_result() -> None:
    spec = {
        "timeline": ["gate"],
        "vars": {"by": ""},
        "steps": {"gate": {"approval": {}, "set": {"by": "result.approver"}}},
    }
    sim = Simulator.start(spec)
    sim.send(cmd.Approve("gate", "ann", None))
    assert sim.state.vars == {"by": "ann"}
    assert phase(sim) == ExecutionPhase.SUCCEEDED


def test_an_assignment_that_fails_at_run_time_fails_the_execution_naming_its_place() -> None:
    spec = {"timeline": ["a", "b"], "vars": {"n": 0}, "steps": {"a": {"set": {"n": "result.missing"}}}}
    sim = Simulator.start(spec)
    sim.run("a")
    assert phase(sim) == ExecutionPhase.FAILED
    assert "steps.a.set.n" in (sim.state.error or "")


def test_variables_growing_past_their_limit_fail_the_execution_saying_so() -> None:
    spec = {"timeline": ["a"], "vars": {"blob": ""}, "steps": {"a": {"set": {"blob": "result.blob"}}}}
    sim = Simulator.start(spec)
    sim.run("a", cmd.OutcomeSuccess({"blob": "x" * limits.MAX_VARIABLES_BYTES}))
    assert phase(sim) == ExecutionPhase.FAILED
    assert "steps.a.set: the variables would be" in (sim.state.error or "")
    assert "limit of all variables" in (sim.state.error or "")


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (
            {"timeline": ["a"], "vars": {"count": 0}, "steps": {"a": {"set": {"cuont": "1"}}}},
            "steps.a.set.cuont: unknown variable 'cuont': declare it in vars (declared: count)",
        ),
        ({"timeline": ["a"], "vars": {"bad-name": 0}}, "vars.bad-name"),
        (
            {"timeline": ["a"], "vars": {"n": 0}, "steps": {"a": {"set": {"n": "eror.x"}}}},
            "steps.a.set.n: unknown name 'eror'",
        ),
        ({"timeline": ["a"], "vars": {f"v{i}": 0 for i in range(101)}}, "vars: 101 variables, over the limit of 100"),
    ],
)
def test_variables_the_engine_cannot_honour_are_refused_at_apply(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(WorkflowInvalid) as refused:
        compile_workflow(spec)
    assert problem in str(refused.value)
