"""Graphs inside a parallel group: `dependsOn` and conditions over phases (issue 16, item 1)."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.ids import TaskToken
from cerebelum_operator.model import WorkflowInvalid, compile_workflow

from .simulator import Simulator

DIAMOND: dict[str, Any] = {
    "timeline": [["a", "b", "c", "d"]],
    "steps": {"b": {"dependsOn": ["a"]}, "c": {"dependsOn": ["a"]}, "d": {"dependsOn": ["b", "c"]}},
}
BOOM = cmd.OutcomeFailure("Boom", "it broke", retryable=False)


def ready(sim: Simulator) -> set[str]:
    return {TaskToken.parse(t.token).step for t in sim.tasks.values()}


def phase(sim: Simulator, name: str) -> StepPhase:
    return sim.state.steps[name].phase


def test_a_diamond_runs_each_step_once_what_it_depends_on_has_settled() -> None:
    sim = Simulator.start(DIAMOND)
    assert ready(sim) == {"a"}
    sim.run("a")
    assert ready(sim) == {"b", "c"}
    sim.run("b")
    assert ready(sim) == {"c"}, "d waits for c too"
    sim.run("c")
    assert ready(sim) == {"d"}
    sim.run("d")
    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert sim.replayed() == sim.state


def test_a_step_runs_after_a_failed_dependency_only_when_its_condition_says_so() -> None:
    # Argo's dag-continue-on-fail: D runs when B failed and C succeeded; E, with no condition,
    # is skipped after B's failure.
    spec: dict[str, Any] = {
        "timeline": [["a", "b", "c", "d", "e"]],
        "steps": {
            "b": {"dependsOn": ["a"]},
            "c": {"dependsOn": ["a"]},
            "d": {"dependsOn": ["b", "c"], "when": "phases.b == 'Failed' && phases.c == 'Succeeded'"},
            "e": {"dependsOn": ["b"]},
        },
        "diverge": {"b": [{"match": {"error": {"type": "Boom"}}, "then": "continue"}]},
    }
    sim = Simulator.start(spec)
    sim.run("a")
    sim.run("b", BOOM)
    sim.run("c")

    assert ready(sim) == {"d"}
    assert phase(sim, "e") == StepPhase.SKIPPED
    sim.run("d")
    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert sim.replayed() == sim.state


def test_a_skipped_dependency_lets_the_step_run() -> None:
    spec = {"timeline": [["a", "b"]], "steps": {"a": {"when": "false"}, "b": {"dependsOn": ["a"]}}}
    sim = Simulator.start(spec)
    assert ready(sim) == {"b"}


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ({"a": {"dependsOn": ["a"]}}, "steps.a.dependsOn[0]: step 'a' cannot wait for itself"),
        (
            {"a": {"dependsOn": ["z"]}},
            "steps.a.dependsOn[0]: step 'z' is not in the parallel group of 'a': no such step",
        ),
        ({"a": {"dependsOn": ["c"]}}, "(it is at timeline[1]; the timeline already orders the two)"),
        ({"a": {"dependsOn": ["b"]}, "b": {"dependsOn": ["a"]}}, "a cycle"),
    ],
)
def test_a_graph_the_engine_cannot_run_is_refused(steps: dict[str, Any], problem: str) -> None:
    with pytest.raises(WorkflowInvalid) as refused:
        compile_workflow({"timeline": [["a", "b"], "c"], "steps": steps})
    assert problem in str(refused.value)


def test_a_step_listed_before_what_it_waits_for_runs_once_that_is_skipped() -> None:
    spec = {"timeline": [["late", "early"]], "steps": {"late": {"dependsOn": ["early"]}, "early": {"when": "false"}}}
    sim = Simulator.start(spec)
    assert ready(sim) == {"late"}
    assert sim.replayed() == sim.state
