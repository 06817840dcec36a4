"""Flow control in the pure core: the key, the queue hold and the slot's actions (issue 19)."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase, Reply, StepPhase
from cerebelum_operator.engine import actions as act
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.rates import RateLimit
from cerebelum_operator.model import InputInvalid, WorkflowInvalid, compile_workflow

from .simulator import Simulator

LIMITED: dict[str, Any] = {
    "timeline": ["a", "b"],
    "flowControl": {"key": "input.customer", "concurrency": 2, "priority": "input.gold ? 10 : 0"},
}


def actions(sim: Simulator) -> list[object]:
    assert sim.last_decision is not None
    return list(sim.last_decision.actions)


def test_an_execution_with_a_concurrency_limit_starts_queued_for_its_key_and_starts_nothing() -> None:
    sim = Simulator.start(LIMITED, {"customer": "acme", "gold": True})

    assert (sim.state.flow_key, sim.state.priority) == ("acme", 10)
    assert sim.state.display_phase() == ExecutionPhase.QUEUED
    assert "at most 2 executions run at once for key 'acme'" in sim.state.holds["concurrency"].reason
    assert act.WaitForFlowSlot("acme", 10, 2) in actions(sim)
    assert not sim.tasks and sim.state.steps["a"].phase == StepPhase.HELD
    assert sim.kinds()[:3] == ["ExecutionStarted", "FlowAssigned", "ExecutionPaused"]


def test_the_admission_resumes_it_takes_the_slot_and_its_end_frees_the_slot() -> None:
    sim = Simulator.start(LIMITED, {"customer": "acme", "gold": False})
    sim.send(cmd.Resume("flow control", source="concurrency"))

    assert act.AdmitFlowSlot() in actions(sim)
    assert sim.state.display_phase() == ExecutionPhase.RUNNING
    sim.run("a")
    sim.run("b")
    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert act.FreeFlowSlot() in actions(sim)


def test_a_queued_execution_cancelled_gives_up_its_place() -> None:
    sim = Simulator.start(LIMITED, {"customer": "acme", "gold": False})
    sim.send(cmd.Cancel("not needed"))
    assert act.FreeFlowSlot() in actions(sim)


def test_a_user_pause_on_a_queued_execution_shows_paused_and_admission_alone_does_not_run_it() -> None:
    sim = Simulator.start(LIMITED, {"customer": "acme", "gold": False})
    sim.send(cmd.Pause("hold on", "ops"))
    assert sim.state.display_phase() == ExecutionPhase.PAUSED

    sim.send(cmd.Resume("flow control", source="concurrency"))
    assert not sim.tasks  # admitted, its slot taken, but still paused by ops
    sim.send(cmd.Resume("ops"))
    assert sim.task("a") is not None


def test_a_redriven_execution_gets_in_line_again() -> None:
    spec = {**LIMITED, "steps": {"a": {"retry": {"maxAttempts": 1}}}}
    sim = Simulator.start(spec, {"customer": "acme", "gold": False})
    sim.send(cmd.Resume("flow control", source="concurrency"))
    sim.run("a", cmd.OutcomeFailure("Boom", "no"))
    assert sim.state.phase == ExecutionPhase.FAILED and act.FreeFlowSlot() in actions(sim)

    sim.send(cmd.Redrive(next(iter(sim.state.dead_letters))))
    assert act.WaitForFlowSlot("acme", 0, 2) in actions(sim)
    assert sim.state.display_phase() == ExecutionPhase.QUEUED and not sim.tasks


def test_without_a_concurrency_limit_the_key_and_priority_are_recorded_and_nothing_waits() -> None:
    sim = Simulator.start({"timeline": ["a"], "flowControl": {"priority": "5"}}, {})
    assert (sim.state.flow_key, sim.state.priority) == ("", 5)
    assert sim.task("a") is not None
    assert not any(isinstance(a, act.WaitForFlowSlot) for a in actions(sim))


@pytest.mark.parametrize(
    ("input", "message"),
    [
        ({"customer": None, "gold": False}, "flowControl.key: gave null; a key must be a string or a number"),
        ({"customer": "x" * 300, "gold": False}, "flowControl.key: gave 300 characters, over the limit of 256"),
        ({"customer": 42, "gold": "yes"}, "flowControl.priority"),
    ],
)
def test_a_key_or_priority_it_cannot_use_refuses_the_start_naming_it(input: dict[str, Any], message: str) -> None:
    with pytest.raises(InputInvalid, match=message):
        Simulator.start(LIMITED, input)


def test_a_numeric_key_is_its_json_text() -> None:
    sim = Simulator.start(LIMITED, {"customer": 42, "gold": False})
    assert sim.state.flow_key == "42"


def test_flow_control_that_says_nothing_or_reads_more_than_the_input_is_refused_at_apply() -> None:
    with pytest.raises(WorkflowInvalid, match="flowControl: says nothing to do"):
        compile_workflow({"timeline": ["a"], "flowControl": {"key": "input.x"}})
    with pytest.raises(WorkflowInvalid, match=r"flowControl\.key: unknown name 'steps'"):
        compile_workflow({"timeline": ["a"], "flowControl": {"key": "steps.a", "concurrency": 1}})


def test_a_duplicate_admission_changes_nothing() -> None:
    sim = Simulator.start(LIMITED, {"customer": "acme", "gold": False})
    sim.send(cmd.Resume("flow control", source="concurrency"))
    assert sim.send(cmd.Resume("flow control", source="concurrency")) == Reply.DUPLICATE


def test_tasks_carry_the_priority_the_key_scoped_by_workflow_and_the_key_s_rate_for_the_dispatcher() -> None:
    spec = {**LIMITED, "flowControl": {**LIMITED["flowControl"], "rateLimit": {"tasks": 5, "per": "2s"}}}
    sim = Simulator.start(spec, {"customer": "acme", "gold": True})
    sim.send(cmd.Resume("flow control", source="concurrency"))

    task = sim.task("a")
    assert (task.priority, task.flow_key) == (10, "wf/acme")
    assert task.key_rate_limit == RateLimit(5, 2_000)


def test_a_code_workflow_s_workflow_tasks_have_the_priority_and_key_but_no_rate() -> None:
    code = {
        "code": {"function": "f", "taskQueue": "brains"},
        "flowControl": {"key": "input.c", "priority": "3", "rateLimit": {"tasks": 1, "per": "1s"}},
    }
    sim = Simulator.start(code, {"c": "k"})
    task = next(iter(sim.tasks.values()))
    assert (task.priority, task.flow_key, task.key_rate_limit) == (3, "wf/k", None)


def test_tasks_of_a_workflow_without_flow_control_carry_the_defaults() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    task = sim.task("a")
    assert (task.priority, task.flow_key, task.key_rate_limit) == (0, None, None)
