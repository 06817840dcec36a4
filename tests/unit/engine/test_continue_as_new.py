"""Continue-as-new: a run ends and asks for the next one of the same logical execution."""

from __future__ import annotations

from cerebelum_operator.engine import ExecutionPhase, ExecutionState
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model import compile_workflow

from .simulator import Simulator

LOOP = {
    "input": {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]},
    "timeline": ["work", "again"],
    "steps": {"again": {"continueAsNew": {"input": "{'count': input.count + 1}"}}},
    "branch": {"work": [{"when": "input.count >= 3", "then": "succeed"}]},
}


def test_a_continue_as_new_step_ends_the_run_and_asks_for_the_next_with_the_new_input() -> None:
    sim = Simulator.start(LOOP, {"count": 0})
    sim.run("work")

    assert sim.state.phase == ExecutionPhase.CONTINUED_AS_NEW
    assert sim.state.phase.terminal
    assert sim.state.continued_as == "ex1:run-2"
    [start] = sim.messages
    assert (start.kind, start.target) == ("start", "ex1:run-2")
    assert start.body == {
        "workflow": "wf",
        "input": {"count": 1},
        "continuedFrom": "ex1",
        "firstRunId": "ex1",
        "run": 2,
        "parentId": None,
        "parentStep": None,
        "signals": [],
        "requestIds": [],
    }
    assert sim.replayed() == sim.state


def test_the_next_run_names_the_chain_by_its_first_run_and_counts_on() -> None:
    definition = compile_workflow(LOOP)
    sim = Simulator(definition, ExecutionState(execution_id="ex1:run-2"))
    sim.send(cmd.Start("wf", {"count": 1}, continued_from="ex1", first_run_id="ex1", run=2))
    sim.run("work")

    assert sim.messages[0].target == "ex1:run-3"
    assert sim.messages[0].body["continuedFrom"] == "ex1:run-2"
    assert sim.messages[0].body["firstRunId"] == "ex1"


def test_an_invalid_next_input_fails_the_run_instead_of_starting_a_run_that_cannot_start() -> None:
    spec = {**LOOP, "steps": {"again": {"continueAsNew": {"input": "{'count': 'many'}"}}}}
    sim = Simulator.start(spec, {"count": 0})
    sim.run("work")

    assert sim.state.phase == ExecutionPhase.FAILED
    assert "steps.again.continueAsNew.input: the next run's input is invalid" in (sim.state.error or "")
    assert sim.messages == []


def test_a_continuing_child_does_not_tell_its_parent_it_ended() -> None:
    definition = compile_workflow(LOOP)
    sim = Simulator(definition, ExecutionState(execution_id="c"))
    sim.send(cmd.Start("wf", {"count": 0}, parent_id="p", parent_step="s"))
    sim.run("work")

    assert [m.kind for m in sim.messages] == ["start"]
    assert sim.messages[0].body["parentId"] == "p"
