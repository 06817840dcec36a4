"""Outputs the engine refuses, from a TypeScript worker: the step fails for good, naming why."""

from __future__ import annotations

from pathlib import Path

import pytest

from cerebelum import Client

from .conftest import Workers, read_ledger

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.mark.parametrize(
    ("step", "input", "error_type"),
    [
        ("big", {"payload_bytes": 3 * 1024 * 1024}, "PayloadTooLarge"),
        ("odd", {}, "InvalidOutput"),
    ],
)
def test_an_output_the_engine_refuses_fails_the_step_for_good_and_the_execution_with_it(
    workers: Workers, client: Client, ledger: Path, step: str, input: dict[str, int], error_type: str
) -> None:
    workers.typescript()
    client.apply_workflow("refused", {"taskQueue": "test", "timeline": [step, "after"]})
    execution = client.start("refused", input)
    final = client.wait(execution.id, timeout=60)
    assert final.phase == "Failed"
    failed = [e.data for e in client.history(execution.id) if e.type == "StepFailed"]
    assert [(f["step"], f["error_type"], f["attempt"]) for f in failed] == [(step, error_type, 1)]
    assert [r["step"] for r in read_ledger(ledger)] == [step], "not retried, and nothing after it ran"
