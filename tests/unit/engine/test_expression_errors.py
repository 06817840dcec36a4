"""A CEL error at run time parks the step in the dead-letter queue, redrivable (issue 16, item 7)."""

from __future__ import annotations

from cerebelum_operator.engine import ExecutionPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine import events as ev
from cerebelum_operator.engine.decide import EXPRESSION_ERROR

from .simulator import Simulator

BRANCHING = {"timeline": ["count", "big", "small"], "branch": {"count": [{"when": "result.n > 10", "goto": "big"}]}}


def phase(sim: Simulator) -> ExecutionPhase:
    return sim.state.phase


def test_a_branch_rule_that_fails_on_a_result_dead_letters_its_step_and_a_redrive_runs_it_again() -> None:
    sim = Simulator.start(BRANCHING)
    sim.run("count", cmd.OutcomeSuccess({"m": 3}))  # a worker bug: no `n`

    assert phase(sim) == ExecutionPhase.FAILED
    assert "branch.count[0]" in (sim.state.error or "")
    parked = [r.event for r in sim.history if isinstance(r.event, ev.StepDeadLettered)]
    assert [(p.step, p.error_type) for p in parked] == [("count", EXPRESSION_ERROR)]
    assert len(sim.dead_letters) == 1

    sim.send(cmd.Redrive(next(iter(sim.dead_letters))))  # the worker was fixed
    sim.run("count", cmd.OutcomeSuccess({"n": 42}))
    sim.run("big")
    sim.run("small")
    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert sim.dead_letters == set()
    assert sim.replayed() == sim.state


def test_a_when_that_fails_dead_letters_the_step_it_guards() -> None:
    sim = Simulator.start({"timeline": ["a", "b"], "steps": {"b": {"when": "steps.a.flag"}}})
    sim.run("a", cmd.OutcomeSuccess({}))
    parked = [r.event for r in sim.history if isinstance(r.event, ev.StepDeadLettered)]
    assert [p.step for p in parked] == ["b"]
    assert phase(sim) == ExecutionPhase.FAILED
