"""Ending early: a branch or diverge rule with `then: succeed` or `then: fail` (issue 16, item 1)."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine import events as ev
from cerebelum_operator.model import WorkflowInvalid, compile_workflow

from .simulator import Simulator


def phase(sim: Simulator) -> ExecutionPhase:
    return sim.state.phase


def ending(sim: Simulator) -> ev.Event:
    return sim.history[-1].event


def test_a_branch_rule_that_succeeds_ends_the_execution_with_that_steps_result() -> None:
    spec = {
        "timeline": ["lookup", "compute", "store"],
        "branch": {"lookup": [{"when": "result.cached", "then": "succeed"}]},
    }
    sim = Simulator.start(spec)
    sim.run("lookup", cmd.OutcomeSuccess({"cached": True, "value": 42}))

    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert sim.state.output == {"cached": True, "value": 42}
    assert ending(sim) == ev.ExecutionSucceeded({"cached": True, "value": 42}, "branch.lookup[0]")
    assert sim.tasks == {}, "nothing after it is scheduled"
    assert sim.replayed() == sim.state


def test_an_early_success_uses_the_output_expression_when_there_is_one() -> None:
    spec = {
        "timeline": ["lookup", "compute"],
        "branch": {"lookup": [{"when": "result.cached", "then": "succeed"}]},
        "output": "{'value': steps.lookup.value}",
    }
    sim = Simulator.start(spec)
    sim.run("lookup", cmd.OutcomeSuccess({"cached": True, "value": 7}))
    assert sim.state.output == {"value": 7}


def test_a_branch_rule_that_fails_ends_the_execution_with_its_message() -> None:
    spec = {
        "timeline": ["check", "ship"],
        "branch": {"check": [{"when": "!result.inStock", "then": "fail", "message": "out of stock"}]},
    }
    sim = Simulator.start(spec)
    sim.run("check", cmd.OutcomeSuccess({"inStock": False}))

    assert phase(sim) == ExecutionPhase.FAILED
    assert sim.state.error == "branch.check[0] ended the execution after step 'check': out of stock"
    assert sim.dead_letters == set(), "a declared failure is not a step to redrive"


def test_a_diverge_rule_can_end_the_execution_successfully_on_an_error_and_cancel_the_rest_of_its_group() -> None:
    spec: dict[str, Any] = {
        "timeline": [["find", "slow"], "after"],
        "diverge": {"find": [{"match": {"error": {"type": "NotFound"}}, "then": "succeed"}]},
    }
    sim = Simulator.start(spec)
    slow = sim.task("slow").token
    sim.run("find", cmd.OutcomeFailure("NotFound", "nothing to do"))

    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert sim.state.output == {"error": {"type": "NotFound", "message": "nothing to do"}}
    assert slow in sim.cancelled
    assert sim.state.steps["slow"].phase == StepPhase.CANCELLED
    assert sim.replayed() == sim.state


def test_a_diverge_fail_rule_says_its_message() -> None:
    spec = {
        "timeline": ["charge"],
        "diverge": {"charge": [{"match": {"result": {"declined": True}}, "then": "fail", "message": "card declined"}]},
    }
    sim = Simulator.start(spec)
    sim.run("charge", cmd.OutcomeSuccess({"declined": True}))
    assert (sim.state.error or "").endswith("sends to fail: card declined")


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"timeline": ["a", "b"], "branch": {"a": [{"when": "true"}]}}, "a branch rule needs exactly one of 'goto' or"),
        (
            {"timeline": ["a", "b"], "branch": {"a": [{"when": "true", "goto": "b", "then": "succeed"}]}},
            "a branch rule needs exactly one of",
        ),
        (
            {"timeline": ["a", "b"], "branch": {"a": [{"when": "true", "then": "succeed", "message": "x"}]}},
            "branch.a[0].message: a message is the reason of a failure",
        ),
        (
            {"timeline": ["a", "b"], "branch": {"a": [{"when": "true", "then": "succeed"}]}},
            "step 'b' is unreachable",
        ),
    ],
)
def test_an_ending_rule_the_engine_cannot_honour_is_refused(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(WorkflowInvalid) as refused:
        compile_workflow(spec)
    assert problem in str(refused.value)
