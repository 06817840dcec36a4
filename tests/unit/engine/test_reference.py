"""docs/workflow-reference.md says what the engine does: retry replacement, outputs, phases, limits.

The behaviour tests pin what the reference documents; the reference tests read it and compare it
with the code's own constants, so a limit or phase that changes without the document fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cerebelum_operator.engine import ExecutionPhase, ExecutionState, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model import compile_workflow, limits
from cerebelum_operator.model.cel_cost import MAX_CEL_NESTING
from cerebelum_operator.model.compile import MAX_CEL_CHARS, MAX_DEPTH, MAX_PARALLEL_STEPS
from cerebelum_operator.model.spec import RetryPolicy

from .simulator import Simulator

REFERENCE = Path(__file__).resolve().parents[3] / "docs" / "workflow-reference.md"


def section(title: str) -> str:
    text = REFERENCE.read_text()
    start = text.index(f"### {title}\n")
    end = text.find("\n### ", start + 1)
    return text[start : end if end > 0 else None]


# -- behaviour -----------------------------------------------------------------------------------


def test_a_steps_retry_replaces_the_default_retry_whole() -> None:
    definition = compile_workflow(
        {
            "timeline": ["charge", "ship"],
            "defaults": {"retry": {"maxAttempts": 5, "initialInterval": "10s", "nonRetryableErrors": ["Fraud"]}},
            "steps": {"charge": {"retry": {"maxAttempts": 2}}},
        }
    )
    charge, ship = definition.steps["charge"].retry, definition.steps["ship"].retry

    assert (charge.max_attempts, charge.initial_interval_ms, charge.non_retryable_errors) == (2, 1000, frozenset())
    assert (ship.max_attempts, ship.initial_interval_ms, ship.non_retryable_errors) == (5, 10_000, frozenset({"Fraud"}))


def test_a_workflow_ending_in_a_parallel_group_outputs_each_members_result_by_name() -> None:
    spec = {
        "timeline": ["fetch", ["resize", "thumbnail"]],
        "diverge": {"thumbnail": [{"match": {"error": {"type": "Boom"}}, "then": "continue"}]},
    }
    sim = Simulator.start(spec)
    sim.run("fetch")
    sim.run("resize", cmd.OutcomeSuccess({"width": 640}))
    sim.run("thumbnail", cmd.OutcomeFailure("Boom", "no codec"))

    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert sim.state.output == {
        "resize": {"width": 640},
        "thumbnail": {"error": {"type": "Boom", "message": "no codec"}},
    }


def test_a_workflow_ending_in_one_step_outputs_that_steps_output() -> None:
    sim = Simulator.start({"timeline": [["a", "b"], "last"]})
    sim.run("a")
    sim.run("b")
    sim.run("last", cmd.OutcomeSuccess([1, 2]))

    assert sim.state.output == [1, 2]


def test_an_execution_is_pending_only_until_it_starts() -> None:
    assert ExecutionState(execution_id="ex1").display_phase() == ExecutionPhase.PENDING
    assert Simulator.start({"timeline": ["a"]}).state.display_phase() == ExecutionPhase.RUNNING


# -- the reference ------------------------------------------------------------------------------


def table_names(text: str, heading: str) -> set[str]:
    """The first-column names of the table that follows `heading` in `text`."""
    table = text[text.index(heading) :].split("\n\n")[1]
    return set(re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE))


def test_the_reference_lists_every_execution_phase_and_step_phase() -> None:
    phases = section("Phases")

    assert table_names(phases, "An execution's `phase`") == {p.value for p in ExecutionPhase}
    assert table_names(phases, "A step's `phase`") == {p.value for p in StepPhase}


def test_the_reference_says_a_steps_retry_replaces_the_default() -> None:
    assert "A step's `retry` **replaces** `defaults.retry` whole; it is not merged" in REFERENCE.read_text()


def test_the_reference_describes_the_output_of_a_workflow_ending_in_a_parallel_group() -> None:
    output = section("The output of an execution")

    assert '`{"resize": <its output>, "thumbnail": <its output>}`' in output


def limit_rows() -> list[tuple[str, str]]:
    retry = RetryPolicy.model_fields
    bound = {
        name: {type(m).__name__: m for m in retry[name].metadata} for name in ("max_attempts", "backoff_coefficient")
    }
    return [
        ("step name", "1 to 63 characters"),
        ("workflow name", f"1 to {limits.MAX_NAME} characters"),
        ("`taskQueue`", f"1 to {limits.MAX_NAME} characters"),
        ("`retry.maxAttempts`", f"1 to {bound['max_attempts']['Le'].le}"),
        ("`retry.backoffCoefficient`", f"1 to {int(bound['backoff_coefficient']['Le'].le)}"),
        ("steps in a parallel group", str(MAX_PARALLEL_STEPS)),
        ("CEL expression", f"{MAX_CEL_CHARS} characters, nested {MAX_CEL_NESTING} levels"),
        ("error type (`nonRetryableErrors`, `match.error.type`)", f"{limits.MAX_ERROR_TYPE} characters"),
        ("`match.error.messageContains`", f"{limits.MAX_MESSAGE} characters"),
        ("`approval.kind`", f"{limits.MAX_APPROVAL_KIND} characters"),
        ("nesting of the document", f"{MAX_DEPTH} levels"),
        ("execution id (`start --id`)", f"{limits.MAX_EXECUTION_ID} characters"),
        ("a failure's message", f"{limits.MAX_MESSAGE} characters"),
        ("a failure's stack trace", f"{limits.MAX_STACKTRACE} characters"),
        ("worker id", f"{limits.MAX_WORKER_ID} characters"),
    ]


@pytest.mark.parametrize(("what", "limit"), limit_rows(), ids=[row[0] for row in limit_rows()])
def test_the_reference_states_each_limit_the_code_enforces(what: str, limit: str) -> None:
    rows = [line for line in section("Limits").splitlines() if line.startswith(f"| {what} |")]

    assert len(rows) == 1, f"no row for {what!r} in the reference's Limits"
    assert rows[0].startswith(f"| {what} | {limit}"), rows[0]


def test_the_step_name_limit_in_the_reference_is_the_one_the_model_enforces() -> None:
    longest = "s" * 63
    compile_workflow({"timeline": [longest]})
    with pytest.raises(ValueError, match="at most 63 characters"):
        compile_workflow({"timeline": [longest + "s"]})


def test_the_concepts_guide_says_redrive_takes_the_dead_letters_id_not_the_executions() -> None:
    concepts = (REFERENCE.parent / "concepts.md").read_text()

    assert "`cerebelum dlq redrive <dead-letter id>`" in concepts
    assert "dlq redrive <id>" not in concepts
