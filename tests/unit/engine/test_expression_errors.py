"""A CEL error at run time parks the step in the dead-letter queue, redrivable (issue 16, item 7)."""

from __future__ import annotations

from cerebelum_operator.engine import ExecutionPhase, decide
from cerebelum_operator.engine import actions as act
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine import events as ev
from cerebelum_operator.engine.decide import EXPRESSION_ERROR
from cerebelum_operator.model import compile_workflow

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


def test_a_redrive_that_adopts_a_fixed_spec_records_it_and_asks_the_store_to_keep_it() -> None:
    sim = Simulator.start(BRANCHING)
    sim.run("count", cmd.OutcomeSuccess({"m": 3}))
    fixed = dict(BRANCHING, branch={"count": [{"when": "has(result.n) && result.n > 10", "goto": "big"}]})
    sim.definition = compile_workflow(fixed)
    decision = decide(
        sim.definition, sim.state, cmd.Redrive(next(iter(sim.dead_letters)), adopt_spec=True), now_ms=sim.now_ms
    )
    decision_actions = decision.actions
    redriven = decision.events[0].event
    assert isinstance(redriven, ev.DeadLetterRedriven) and redriven.spec_hash == sim.definition.spec_hash
    assert [a for a in decision_actions if isinstance(a, act.ReplaceSpec)] == [
        act.ReplaceSpec(sim.definition.spec.model_dump(mode="json", by_alias=True), sim.definition.spec_hash)
    ]
