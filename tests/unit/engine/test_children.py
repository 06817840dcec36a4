"""Child workflows: started by a message, waited for, retried when they fail, cancelled with their parent."""

from __future__ import annotations

from cerebelum_operator.engine import ExecutionPhase, ExecutionState, Reply, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.ids import child_id
from cerebelum_operator.model import compile_workflow

from .simulator import Simulator

PARENT = {
    "timeline": ["prepare", "run_child", "after"],
    "steps": {
        "run_child": {
            "child": {"workflow": "greeter", "input": "{'name': steps.prepare.who}"},
            "retry": {"maxAttempts": 2, "initialInterval": "1s"},
        }
    },
}


def started(sim: Simulator) -> Simulator:
    sim.run("prepare", cmd.OutcomeSuccess({"who": "ada"}))
    return sim


def test_a_child_step_sends_one_start_message_with_the_input_its_expression_computed() -> None:
    sim = started(Simulator.start(PARENT))

    [start] = sim.started_children()
    assert start.target == child_id("ex1", "run_child", 1, 1) == "ex1:run_child:1.1"
    assert start.body == {
        "workflow": "greeter",
        "namespaceOf": "wf",
        "input": {"name": "ada"},
        "parentId": "ex1",
        "parentStep": "run_child",
    }
    assert sim.state.steps["run_child"].phase == StepPhase.RUNNING
    assert [(c.step, c.child_id, c.phase) for c in sim.state.children] == [("run_child", start.target, "Running")]


def test_the_childs_output_is_the_steps_result() -> None:
    sim = started(Simulator.start(PARENT))
    sim.finish_children("Succeeded", {"greeting": "hello ada"})

    assert sim.state.results["run_child"] == {"greeting": "hello ada"}
    assert sim.state.children[0].phase == "Succeeded"
    sim.run("after")
    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert sim.replayed() == sim.state


def test_a_failed_child_is_a_failed_attempt_and_the_retry_starts_a_new_child() -> None:
    sim = started(Simulator.start(PARENT))
    sim.finish_children("Failed", error="boom")

    assert sim.state.steps["run_child"].last_error == (
        "ChildFailed: child execution 'ex1:run_child:1.1' of workflow 'greeter' failed: boom"
    )
    sim.fire_timers()  # the backoff
    assert [m.target for m in sim.started_children()] == ["ex1:run_child:1.1", "ex1:run_child:1.2"]
    sim.finish_children("Failed", error="boom again")
    assert sim.state.phase == ExecutionPhase.FAILED
    assert "after 2 attempts" in (sim.state.error or "")


def test_a_diverge_rule_sees_a_failed_child_s_error_and_can_continue_past_it_or_jump() -> None:
    spec = {
        **PARENT,
        "timeline": ["prepare", "run_child", "after", "fallback"],
        "diverge": {
            "run_child": [
                {"match": {"error": {"type": "ChildFailed", "messageContains": "quota"}}, "goto": "fallback"},
                {"match": {"error": {"type": "ChildFailed"}}, "afterRetries": True, "then": "continue"},
            ]
        },
    }
    jumped = started(Simulator.start(spec))
    jumped.finish_children("Failed", error="quota exceeded")
    assert "fallback" in {t.step for t in jumped.tasks.values()}, "the quota rule jumped past 'after'"
    assert [m.target for m in jumped.started_children()] == ["ex1:run_child:1.1"], "no retry: a rule took it"

    continued = started(Simulator.start(spec))
    continued.finish_children("Failed", error="boom")
    continued.fire_timers()  # the retry policy first (2 attempts), then the rule waiting for it
    continued.finish_children("Failed", error="boom again")
    assert continued.state.phase == ExecutionPhase.RUNNING
    assert continued.state.results["run_child"] == {
        "error": {
            "type": "ChildFailed",
            "message": "child execution 'ex1:run_child:1.2' of workflow 'greeter' failed: boom again",
        }
    }
    assert continued.task("after") is not None


def test_a_late_or_repeated_end_of_a_child_changes_nothing() -> None:
    sim = started(Simulator.start(PARENT))
    first = sim.started_children()[0].target
    sim.send(cmd.ChildFinished(first, "Succeeded", 1))
    before = len(sim.history)

    assert sim.send(cmd.ChildFinished(first, "Succeeded", 1)) == Reply.STALE
    assert sim.send(cmd.ChildFinished("someone-else", "Failed")) == Reply.STALE
    assert len(sim.history) == before


def test_cancelling_the_parent_cancels_its_running_child() -> None:
    sim = started(Simulator.start(PARENT))
    child = sim.started_children()[0].target
    sim.send(cmd.Cancel("stop"))

    cancels = [m for m in sim.messages if m.kind == "command" and m.body["command"] == "cancel"]
    assert [(m.target, m.body["reason"]) for m in cancels] == [(child, "its parent execution 'ex1' ended")]
    assert sim.state.children[0].phase == "Cancelled"
    # The cancel is ordered after the start: the relay delivers one sender's messages in seq order.
    start = sim.started_children()[0]
    assert start.seq < cancels[0].seq


def test_a_parent_that_fails_cancels_its_children_too() -> None:
    spec = {"timeline": [["run_child", "doomed"]], "steps": {"run_child": {"child": {"workflow": "w2"}}}}
    sim = Simulator.start(spec)
    sim.run("doomed", cmd.OutcomeFailure("Boom", "no", retryable=False))

    assert sim.state.phase == ExecutionPhase.FAILED
    assert [m.body["command"] for m in sim.messages if m.kind == "command"] == ["cancel"]


def test_an_abandoning_child_step_leaves_its_child_running_when_the_parent_is_cancelled() -> None:
    spec = {
        "timeline": ["run_child"],
        "steps": {"run_child": {"child": {"workflow": "w2", "onParentCancel": "abandon"}}},
    }
    sim = Simulator.start(spec)
    sim.send(cmd.Cancel("stop"))

    assert [m for m in sim.messages if m.kind == "command"] == []
    assert sim.state.children[0].phase == "Abandoned"


def test_a_child_that_ends_tells_its_parent_how_naming_itself_by_its_chains_first_run() -> None:
    definition = compile_workflow({"timeline": ["a"]})
    sim = Simulator(definition, ExecutionState(execution_id="p:run_child:1.1"))
    sim.send(cmd.Start("greeter", {"name": "ada"}, parent_id="p", parent_step="run_child"))
    sim.run("a", cmd.OutcomeSuccess({"greeting": "hi"}))

    [told] = [m for m in sim.messages if m.kind == "command"]
    assert told.target == "p"
    assert told.body == {
        "command": "childFinished",
        "childId": "p:run_child:1.1",
        "phase": "Succeeded",
        "output": {"greeting": "hi"},
        "error": None,
    }
    assert sim.state.parent_id == "p" and sim.replayed() == sim.state


def test_a_second_run_of_the_step_after_a_loop_starts_a_child_of_its_own() -> None:
    spec = {
        "timeline": ["run_child", "check"],
        "steps": {"run_child": {"child": {"workflow": "w2"}}},
        "branch": {"check": [{"when": "steps.check.again", "goto": "run_child", "maxIterations": 3}]},
    }
    sim = Simulator.start(spec)
    sim.finish_children("Succeeded", 1)
    sim.run("check", cmd.OutcomeSuccess({"again": True}))
    sim.finish_children("Succeeded", 2)

    assert [m.target for m in sim.started_children()] == ["ex1:run_child:1.1", "ex1:run_child:2.1"]
