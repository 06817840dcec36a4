"""What the engine's messages say to a person (issue 15): counts pluralised, unknown names named."""

from __future__ import annotations

import pytest

from cerebelum_operator.engine import CommandRejected, ExecutionPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model import InputInvalid

from .simulator import Simulator

FAIL = cmd.OutcomeFailure("Boom", "it broke")


def test_a_step_that_gave_up_after_one_attempt_says_attempt_in_the_singular() -> None:
    sim = Simulator.start({"timeline": ["a"], "defaults": {"retry": {"maxAttempts": 1}}})
    sim.run("a", FAIL)
    assert sim.state.phase == ExecutionPhase.FAILED
    assert "(after 1 attempt)" in (sim.state.error or ""), sim.state.error


def test_approving_a_step_the_workflow_does_not_have_names_the_step_and_what_is_pending() -> None:
    sim = Simulator.start({"timeline": ["a", "gate"], "steps": {"gate": {"approval": {}}}})
    sim.run("a")

    with pytest.raises(CommandRejected) as rejected:
        sim.send(cmd.Approve("nosuchstep", "alice"))

    assert "has no step 'nosuchstep' (its steps: a, gate)" in str(rejected.value)
    assert "waits for the approval of: gate" in str(rejected.value)


def test_a_missing_input_names_the_workflow_and_the_input_it_requires() -> None:
    spec = {"timeline": ["a"], "input": {"type": "object", "required": ["region"]}}

    with pytest.raises(InputInvalid) as refused:
        Simulator.start(spec, None)

    assert str(refused.value) == "the workflow 'wf' requires an input (an object) and none was given"
    with pytest.raises(InputInvalid, match="'region' is a required property"):  # a given input: the schema's words
        Simulator.start(spec, {})
