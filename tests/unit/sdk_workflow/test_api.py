"""The public names of workflows as code, step options on the wire, and the subpackage's independence."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest

import cerebelum
import cerebelum.workflow
from cerebelum.workflow import RetryPolicy, StepOptions
from cerebelum.workflow.options import format_duration

WORKFLOW_NAMES = [
    "ApprovalRejectedError",
    "ApprovalTimedOutError",
    "ChildFailedError",
    "NonDeterminismError",
    "ReplayResult",
    "RetryPolicy",
    "Signal",
    "SignalTimedOutError",
    "StepFailedError",
    "StepOptions",
    "WorkflowContext",
    "WorkflowStepError",
    "WorkflowTaskError",
    "replay",
]


def test_the_package_exports_the_workflow_api() -> None:
    for name in WORKFLOW_NAMES:
        assert name in cerebelum.__all__, name
        assert getattr(cerebelum, name) is getattr(cerebelum.workflow, name)


def test_every_failure_of_a_waiting_command_is_a_workflow_step_error() -> None:
    for name in (
        "StepFailedError",
        "ApprovalRejectedError",
        "ApprovalTimedOutError",
        "SignalTimedOutError",
        "ChildFailedError",
    ):
        assert issubclass(getattr(cerebelum, name), cerebelum.WorkflowStepError), name
    error = cerebelum.StepFailedError("CardDeclined", "no funds", step="charge#3")
    assert (error.error_type, error.message, error.step) == ("CardDeclined", "no funds", "charge#3")
    assert str(error) == "charge#3: CardDeclined: no funds"


def test_the_workflow_subpackage_imports_nothing_of_step_execution() -> None:
    forbidden = {"cerebelum.execution", "cerebelum.steps", "cerebelum.context", "cerebelum.worker"}
    folder = Path(cerebelum.workflow.__file__).parent
    modules = sorted(folder.glob("*.py"))
    assert len(modules) >= 10
    for module in modules:
        tree = ast.parse(module.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not imported & forbidden, (module.name, imported & forbidden)
        assert isinstance(ast.literal_eval(_all_of(tree)), list), module.name


def _all_of(tree: ast.Module) -> ast.expr:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return node.value
    raise AssertionError("no __all__")


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.5, "1500ms"), (30, "30s"), (timedelta(minutes=2), "120s"), ("1h30m", "5400s"), ("250ms", "250ms"), (0, "0s")],
)
def test_durations_are_written_as_the_protocol_reads_them(value: float | timedelta | str, text: str) -> None:
    assert format_duration(value) == text


def test_step_options_are_written_in_camel_case_and_unset_ones_are_left_out() -> None:
    options = StepOptions(
        task_queue="gpu",
        timeout=90,
        heartbeat_timeout=timedelta(seconds=10),
        schedule_to_start_timeout="5m",
        retry=RetryPolicy(max_attempts=5, initial_interval=0.5, backoff_coefficient=2.0, non_retryable_errors=["Bad"]),
    )
    assert options.to_json() == {
        "taskQueue": "gpu",
        "timeout": "90s",
        "heartbeatTimeout": "10s",
        "scheduleToStartTimeout": "300s",
        "retry": {
            "maxAttempts": 5,
            "initialInterval": "500ms",
            "backoffCoefficient": 2.0,
            "nonRetryableErrors": ["Bad"],
        },
    }
    assert StepOptions().to_json() == {}
    assert StepOptions(retry={"maxAttempts": 1}).to_json() == {"retry": {"maxAttempts": 1}}


def test_a_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(-1)
