"""The workflow-language samples of the reference, run through the engine core as written.

Each YAML block marked for this module is a workflow spec. It is compiled as `apply` compiles it
and run by `decide` on a fake clock (timers fire at once, approvals are granted, every task
succeeds with ``{<step>: true}`` unless the sample says otherwise), and the sample's own comments
say what must come of it:

- ``# input: <JSON>``: the execution's input;
- ``# output of <step>: <JSON>``: what the worker returns for that step;
- ``# fails: <steps>``: their every attempt fails, with error type ``Boom`` or ``# error type: <type>``;
- ``# failing items: <indices>``: those items of a forEach step fail (the others return
  ``{<step>: <item>}``, or the step's ``output of``);
- ``# signals: <name> <JSON>; <name> <JSON>``: signals sent right after the start, in order (they
  wait in the queue until a signal step takes them);
- a child step's child ends as its ``# output of <step>`` says (``{<step>: true}`` by default), or
  fails if the step is in ``# fails``;
- ``# next input: <JSON>``: the input a ``continueAsNew`` step gave the next run;
- ``# expect: <phase>``: the execution's phase at the end (``Succeeded`` when not said);
- ``# execution output: <JSON>``: the execution's output at the end;
- ``# ran: <steps>`` / ``# never ran: <steps>`` / ``# skipped: <steps>``: steps that must have run,
  must not have, or must have been skipped.

An execution waiting for a flow-control slot is admitted, as the only one of its key would be.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from cerebelum_operator.engine import ExecutionState, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.ids import TaskToken
from cerebelum_operator.model import compile_workflow
from tests.unit.engine.simulator import Simulator

from .blocks import Block, marked_for

BLOCKS = marked_for(__file__)
DOC_BLOCKS = [block.text for block in BLOCKS]  # tests/docs/test_coverage.py: each is run below
_COMMENT = re.compile(
    r"^\s*# (input|output of [\w.-]+|fails|failing items|error type|signals|next input|expect|execution output|ran"
    r"|never ran|skipped): (.*)$",
    re.MULTILINE,
)
MAX_STEPS = 500  # commands sent before a sample is called stuck


def says(block: Block) -> dict[str, str]:
    return {key: value.strip() for key, value in _COMMENT.findall(block.text)}


def names(text: str | None) -> set[str]:
    return set((text or "").replace(",", " ").split())


def _items(text: str | None) -> list[tuple[str, str]]:
    """``label[1], label[3]`` as (step, index) pairs."""
    return re.findall(r"([\w.-]+)\[(\d+)\]", text or "")


def drive(sim: Simulator, outputs: dict[str, Any], failing: set[str], error_type: str) -> None:
    for _ in range(MAX_STEPS):
        if sim.state.phase.terminal:
            return
        if sim.tasks:
            task = next(iter(sim.tasks.values()))
            parsed = TaskToken.parse(task.token)
            step = parsed.step
            fails = step in failing or (parsed.item is not None and f"{step}[{parsed.item}]" in failing)
            default = {step: task.arguments["item"]} if parsed.item is not None else {step: True}
            outcome: cmd.Outcome = (
                cmd.OutcomeFailure(error_type, "the sample's failing step", retryable=True)
                if fails
                else cmd.OutcomeSuccess(outputs.get(step, default))
            )
            sim.now_ms = max(sim.now_ms, task.visible_at_ms)
            sim.send(cmd.TaskStarted(task.token, "w1"))
            sim.send(cmd.TaskCompleted(task.token, outcome, worker_id="w1"))
        elif sim.state.live_children:
            step, index = next(iter(sim.state.live_children.items()))
            child = sim.state.children[index].child_id
            if step in failing:
                sim.send(cmd.ChildFinished(child, "Failed", None, "the sample's failing child"))
            else:
                sim.send(cmd.ChildFinished(child, "Succeeded", outputs.get(step, {step: True})))
        elif sim.state.approvals:
            sim.send(cmd.Approve(next(iter(sim.state.approvals)), "sample-approver", None))
        elif "concurrency" in sim.state.holds:  # a lone execution of its key: admitted at once
            sim.send(cmd.Resume("flow control", source="concurrency"))
        elif sim.timers:
            sim.fire_timers()
        else:
            raise AssertionError(f"stuck: nothing to run, approve or fire at phase {sim.state.phase}")
    raise AssertionError(f"still {sim.state.phase} after {MAX_STEPS} commands")


@pytest.mark.parametrize("block", BLOCKS, ids=[block.where for block in BLOCKS])
def test_a_language_sample_compiles_and_runs_to_what_it_says(block: Block) -> None:
    said = says(block)
    outputs = {
        key.removeprefix("output of "): json.loads(value) for key, value in said.items() if key.startswith("output of ")
    }
    sim = Simulator(compile_workflow(yaml.safe_load(block.text)), ExecutionState(execution_id="sample"))
    sim.send(cmd.Start("sample", json.loads(said["input"]) if "input" in said else None))
    for signal in filter(None, (part.strip() for part in said.get("signals", "").split(";"))):
        name, _, data = signal.partition(" ")
        sim.send(cmd.Signal(name, json.loads(data or "null"), sender="sample-sender"))

    failing = names(said.get("fails")) | {f"{step}[{index}]" for step, index in _items(said.get("failing items"))}
    drive(sim, outputs, failing, said.get("error type", "Boom"))

    assert sim.state.phase.value == said.get("expect", "Succeeded"), sim.state.error
    if "execution output" in said:
        assert sim.state.output == json.loads(said["execution output"])
    if "next input" in said:
        assert [m.body["input"] for m in sim.messages if "continuedFrom" in m.body] == [json.loads(said["next input"])]
    ran = {name for name, step in sim.state.steps.items() if step.total_attempts > 0}
    assert names(said.get("ran")) <= ran, f"ran only {sorted(ran)}"
    assert not names(said.get("never ran")) & ran, f"ran {sorted(ran)}"
    skipped = {name for name, step in sim.state.steps.items() if step.phase == StepPhase.SKIPPED}
    assert names(said.get("skipped")) <= skipped, f"skipped {sorted(skipped)}"


def test_every_construct_of_the_language_has_a_sample_here() -> None:
    samples = "\n".join(DOC_BLOCKS)
    for construct in (
        "timer:",
        "when:",
        "timeout:",
        "then: succeed",
        "then: fail",
        "vars:",
        "set:",
        "afterRetries:",
        "compensate:",
        "finally:",
        "forEach:",
        "signal:",
        "child:",
        "continueAsNew:",
    ):
        assert construct in samples, f"the reference has no run sample using {construct}"
