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


PAGES = {
    "input": {"type": "object", "properties": {"cursor": {"type": "integer"}}, "required": ["cursor"]},
    "timeline": ["fetch", "store"],
    "branch": {
        "fetch": [
            {"when": "result.next == null", "then": "succeed"},
            {"when": "result.count >= 100", "then": "continueAsNew", "input": "{'cursor': result.next}"},
        ]
    },
}


def test_a_branch_rule_continues_as_new_with_an_input_made_from_the_step_s_result() -> None:
    sim = Simulator.start(PAGES, {"cursor": 0})
    sim.run("fetch", cmd.OutcomeSuccess({"next": 250, "count": 100}))

    assert sim.state.phase == ExecutionPhase.CONTINUED_AS_NEW
    [start] = sim.messages
    assert start.body["input"] == {"cursor": 250}
    assert "store" not in sim.tasks, "the run ended at the rule: the rest of the timeline is the next run's"
    assert sim.replayed() == sim.state


def test_a_branch_rule_that_does_not_match_lets_the_timeline_go_on() -> None:
    sim = Simulator.start(PAGES, {"cursor": 0})
    sim.run("fetch", cmd.OutcomeSuccess({"next": 250, "count": 3}))
    assert sim.state.phase == ExecutionPhase.RUNNING
    assert sim.task("store") is not None


def test_a_diverge_rule_continues_as_new_on_a_failure_with_this_run_s_input_when_it_names_none() -> None:
    spec = {
        "input": {"type": "object"},
        "timeline": ["poll"],
        "steps": {"poll": {"retry": {"maxAttempts": 1}}},
        "diverge": {"poll": [{"match": {"error": {"type": "Stale"}}, "then": "continueAsNew"}]},
    }
    sim = Simulator.start(spec, {"since": 7})
    sim.run("poll", cmd.OutcomeFailure("Stale", "the cursor expired", retryable=False))

    assert sim.state.phase == ExecutionPhase.CONTINUED_AS_NEW
    assert sim.messages[0].body["input"] == {"since": 7}
    kinds = sim.kinds()
    assert kinds[-2:] == ["StepFailed", "ExecutionContinuedAsNew"]


def test_an_input_on_a_rule_that_does_not_continue_as_new_is_refused_naming_it() -> None:
    import pytest

    from cerebelum_operator.model import WorkflowInvalid

    spec = {**PAGES, "branch": {"fetch": [{"when": "true", "then": "succeed", "input": "{'cursor': 1}"}]}}
    with pytest.raises(WorkflowInvalid) as refused:
        compile_workflow(spec)
    assert "branch.fetch[0].input: an input is the next run's: it goes with then: continueAsNew" in str(refused.value)
