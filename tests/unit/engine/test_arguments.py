"""Arguments: a step names the worker function it runs and passes it CEL-computed args (issue 16, item 2)."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model import WorkflowInvalid, compile_workflow

from .simulator import Simulator

# One `resize` function serves two steps, each with its own width.
THUMBNAILS: dict[str, Any] = {
    "timeline": ["fetch", ["small", "large"]],
    "steps": {
        "small": {"function": "resize", "args": {"width": "128", "url": "steps.fetch.url"}},
        "large": {"function": "resize", "args": {"width": "input.width * 2", "url": "steps.fetch.url"}},
    },
}


def test_two_steps_run_one_function_each_with_the_arguments_their_cel_computes() -> None:
    sim = Simulator.start(THUMBNAILS, {"width": 512})
    sim.run("fetch", cmd.OutcomeSuccess({"url": "s3://img/1.png"}))

    small, large = sim.task("small"), sim.task("large")
    assert (small.step, large.step) == ("resize", "resize"), "what a worker must have registered"
    assert small.arguments["args"] == {"width": 128, "url": "s3://img/1.png"}
    assert large.arguments["args"] == {"width": 1024, "url": "s3://img/1.png"}
    assert small.token != large.token and "/small/" in small.token and "/large/" in large.token
    sim.run("small")
    sim.run("large")
    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert set(sim.state.results) == {"fetch", "small", "large"}, "results are the steps', by step name"


def test_a_step_without_args_carries_no_args_key() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    assert "args" not in sim.task("a").arguments


def test_an_argument_that_fails_at_run_time_fails_the_execution_naming_its_place() -> None:
    spec = {"timeline": ["a", "b"], "steps": {"b": {"args": {"n": "steps.a.missing"}}}}
    sim = Simulator.start(spec)
    sim.run("a")
    assert sim.state.phase == ExecutionPhase.FAILED
    assert "steps.b.args.n" in (sim.state.error or "")


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        ({"args": {"bad-name": "1"}}, "steps.a.args.bad-name: an argument is a parameter's name"),
        ({"args": {"n": "inptu.x"}}, "steps.a.args.n: unknown name 'inptu'"),
        ({"function": "f", "approval": {}}, "steps.a.function: an approval or timer step runs no worker function"),
        ({"function": "bad/name"}, "steps.a.function"),
    ],
)
def test_arguments_the_engine_cannot_honour_are_refused_at_apply(step: dict[str, Any], problem: str) -> None:
    with pytest.raises(WorkflowInvalid) as refused:
        compile_workflow({"timeline": ["a"], "steps": {"a": step}})
    assert problem in str(refused.value)
