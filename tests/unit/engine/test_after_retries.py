"""`afterRetries`: a diverge rule consulted once the retry policy gave up (issue 16, item 4)."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model import WorkflowInvalid, compile_workflow

from .simulator import Simulator

TRANSIENT = cmd.OutcomeFailure("Timeout", "the bank did not answer", retryable=True)
# The money-transfer saga of the issue: retry the credit, and refund only once retries ran out.
TRANSFER: dict[str, Any] = {
    "timeline": ["withdraw", "credit", "done", "refund"],
    "defaults": {"retry": {"maxAttempts": 3, "initialInterval": "1s"}},
    "diverge": {"credit": [{"match": {"error": {"type": "Timeout"}}, "afterRetries": True, "goto": "refund"}]},
    "branch": {"done": [{"when": "true", "then": "succeed"}]},
}


def phase(sim: Simulator) -> ExecutionPhase:
    return sim.state.phase


def attempts_of(sim: Simulator, step: str) -> int:
    return sim.state.steps[step].total_attempts


def test_a_transient_failure_is_retried_first_and_the_rule_fires_only_when_the_attempts_are_spent() -> None:
    sim = Simulator.start(TRANSFER)
    sim.run("withdraw")
    sim.run("credit", TRANSIENT)
    assert sim.task("credit").attempt == 2, "the rule waited: the policy retries"
    sim.run("credit", TRANSIENT)
    sim.run("credit", TRANSIENT)

    assert attempts_of(sim, "credit") == 3
    assert sim.task("refund") is not None, "then the rule sent it to refund"
    sim.run("refund")
    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert sim.dead_letters == set()
    assert sim.replayed() == sim.state


def test_a_failure_that_recovers_within_its_retries_never_reaches_the_rule() -> None:
    sim = Simulator.start(TRANSFER)
    sim.run("withdraw")
    sim.run("credit", TRANSIENT)
    sim.run("credit")
    sim.run("done")

    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert "refund" not in sim.state.steps or sim.state.steps["refund"].phase != StepPhase.SUCCEEDED


def test_a_non_retryable_failure_reaches_the_rule_at_once() -> None:
    sim = Simulator.start(TRANSFER)
    sim.run("withdraw")
    sim.run("credit", cmd.OutcomeFailure("Timeout", "refused for good", retryable=False))

    assert attempts_of(sim, "credit") == 1
    assert sim.task("refund") is not None


def test_a_rule_for_each_attempt_still_comes_first() -> None:
    spec = dict(TRANSFER)
    spec["diverge"] = {
        "credit": [
            {"match": {"error": {"type": "Timeout"}}, "afterRetries": True, "goto": "refund"},
            {"match": {"error": {"messageContains": "closed"}}, "then": "fail", "message": "account closed"},
        ]
    }
    sim = Simulator.start(spec)
    sim.run("withdraw")
    sim.run("credit", cmd.OutcomeFailure("Timeout", "account closed", retryable=True))

    assert phase(sim) == ExecutionPhase.FAILED
    assert (sim.state.error or "").endswith(": account closed")


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"match": {"error": {"type": "X"}}, "afterRetries": True, "then": "retry"}, "cannot retry"),
        ({"match": {"result": {"ok": False}}, "afterRetries": True, "then": "fail"}, "a rule matching a result"),
    ],
)
def test_an_after_retries_rule_that_could_never_apply_is_refused(rule: dict[str, Any], problem: str) -> None:
    with pytest.raises(WorkflowInvalid, match=problem):
        compile_workflow({"timeline": ["a"], "diverge": {"a": [rule]}})
