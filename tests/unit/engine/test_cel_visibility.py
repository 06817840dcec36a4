"""`cel_check.EXPRESSION_VARIABLES` is what `decide` really gives each kind of expression.

The apply-time check refuses a name its row does not list, so the row must be exactly what the
engine passes: each name listed evaluates, and each one not listed fails at run time. The
workflows are compiled as started snapshots so the check itself does not stop them first.
"""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase, ExecutionState
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model import InputInvalid, compile_workflow
from cerebelum_operator.model.cel_check import EXPRESSION_VARIABLES
from tests.support.cel_constructs import expression_spec

from .simulator import Simulator

ALL_NAMES = sorted({name for names in EXPRESSION_VARIABLES.values() for name in names})


def spec_with(construct: str, source: str) -> dict[str, Any]:
    if construct == "timer":  # a condition made a timestamp, already past: the timer wakes at once
        stamp = "timestamp('2020-01-01T00:00:00Z')"
        source = f"({source}) ? {stamp} : {stamp}"
    if construct == "items":  # a condition made a list of one item
        source = f"({source}) ? [1] : [1]"
    return expression_spec(construct, source, timeline=["a", "b", "c"], on="a", reached="b", target="c")


def run(construct: str, name: str) -> Simulator:
    """Run a workflow whose one expression of this construct reads `name`."""
    definition = compile_workflow(spec_with(construct, f"{name} == {name}"), started=True)
    sim = Simulator(definition, ExecutionState(execution_id="ex1"))
    sim.send(cmd.Start("wf", {"k": 1}))
    for step in ("a", "b", "c"):
        if sim.state.phase != ExecutionPhase.RUNNING:
            break
        if any(t.step == step for t in sim.tasks.values()):
            sim.run(step)
        sim.fire_timers()
        sim.finish_children()
    return sim


@pytest.mark.parametrize(
    ("construct", "name"),
    [(construct, name) for construct in EXPRESSION_VARIABLES for name in ALL_NAMES],
)
def test_a_name_is_listed_for_an_expression_exactly_when_decide_gives_it_that_variable(
    construct: str, name: str
) -> None:
    if construct == "flowControl":  # evaluated before the start: a failure refuses it
        definition = compile_workflow(spec_with(construct, f"{name} == {name}"), started=True)
        sim = Simulator(definition, ExecutionState(execution_id="ex1"))
        if name in EXPRESSION_VARIABLES[construct]:
            sim.send(cmd.Start("wf", {"k": 1}))
            assert sim.state.priority == 1
        else:
            with pytest.raises(InputInvalid, match=name):
                sim.send(cmd.Start("wf", {"k": 1}))
        return
    sim = run(construct, name)

    if name in EXPRESSION_VARIABLES[construct]:
        assert sim.state.phase == ExecutionPhase.SUCCEEDED, sim.state.error
    else:
        assert sim.state.phase == ExecutionPhase.FAILED
        assert name in (sim.state.error or "")
