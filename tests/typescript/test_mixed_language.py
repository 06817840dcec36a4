"""A workflow whose steps alternate between a Python worker and a TypeScript worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from cerebelum import Client

from .conftest import Workers, event_types, read_ledger

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_a_workflow_alternating_python_and_typescript_steps_succeeds_passing_outputs_across_languages(
    workers: Workers, client: Client, ledger: Path
) -> None:
    python, typescript = workers.python("mixed"), workers.typescript("mixed")
    client.apply_workflow("relay", {"taskQueue": "mixed", "timeline": ["py_start", "ts_double", "py_add", "ts_finish"]})
    execution = client.start("relay", {"n": 4})
    final = client.wait(execution.id, timeout=60)
    assert final.phase == "Succeeded", final.error
    # (4 + 1) * 2 + 3, each step reading the one before it, written in the other language.
    assert final.output == {
        "value": 13,
        "trail": ["python", "typescript", "python", "typescript"],
        "input": 4,
        "seen": ["py_add", "py_start", "ts_double"],
    }
    assert final.step("ts_double") is not None
    runs = [(r["step"], r["language"], r["pid"]) for r in read_ledger(ledger) if r["execution"] == execution.id]
    assert runs == [
        ("py_start", "python", python.pid),
        ("ts_double", "typescript", typescript.pid),
        ("py_add", "python", python.pid),
        ("ts_finish", "typescript", typescript.pid),
    ]
    types = event_types(client, execution.id)
    assert types.count("StepCompleted") == 4
    assert "StepFailed" not in types


def test_many_mixed_executions_at_once_all_succeed_with_each_step_run_once(
    workers: Workers, client: Client, ledger: Path
) -> None:
    workers.python("mixed")
    workers.typescript("mixed")
    workers.typescript("mixed")
    client.apply_workflow("relay", {"taskQueue": "mixed", "timeline": ["py_start", "ts_double", "py_add", "ts_finish"]})
    executions = [client.start("relay", {"n": n}).id for n in range(20)]
    finals = [client.wait(execution_id, timeout=60) for execution_id in executions]
    assert [f.phase for f in finals] == ["Succeeded"] * 20
    assert [f.output["value"] for f in finals] == [(n + 1) * 2 + 3 for n in range(20)]
    runs = read_ledger(ledger)
    assert len(runs) == 80
    assert len({(r["execution"], r["step"]) for r in runs}) == 80
