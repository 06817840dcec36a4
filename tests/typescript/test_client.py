"""The TypeScript SDK's `Client` against a real `cerebelum dev` (issue 17): the guide's sample runs
as written, and what a signal sent from TypeScript carries reaches the execution."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from cerebelum import Client
from tests.support.processes import ROOT, EngineProcess

from .conftest import PACKAGE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

GUIDE = ROOT / "docs" / "typescript-sdk.md"
SAMPLE = PACKAGE / "test" / "clients" / "greet-client.ts"
# A signal step only: the signal's data is the output, so no worker is needed.
GREET = {
    "timeline": ["wait_name"],
    "steps": {"wait_name": {"signal": {"name": "name", "timeout": "1h"}}},
    "output": "steps.wait_name.data",
}


def run_node(node: str, engine: EngineProcess, script: str) -> subprocess.CompletedProcess[str]:
    built = PACKAGE / "build" / "test" / "clients" / script
    environment = {**os.environ, "CEREBELUM_ADDRESS": engine.address}
    return subprocess.run(
        [node, str(built)], env=environment, capture_output=True, text=True, cwd=ROOT, timeout=90, check=False
    )


def test_the_guide_shows_the_client_sample_exactly_as_the_test_below_runs_it() -> None:
    section = GUIDE.read_text().split("## Starting and signalling executions", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```ts\n(.*?)```", section, re.DOTALL)
    assert blocks == [SAMPLE.read_text()]


def test_the_client_sample_starts_signals_and_signals_with_start_against_a_real_engine(
    node: str, engine: EngineProcess, client: Client
) -> None:
    client.apply_workflow("greet", GREET)

    ran = run_node(node, engine, "greet-client.js")

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.splitlines() == ['Succeeded {"first":"Ann"}', 'greet-bob Succeeded "Bob" 1']
    (ann,) = [e for e in client.list(workflow="greet") if e.id != "greet-bob"]
    assert ann.input == {"lang": "en"}
    assert [e.type for e in client.history("greet-bob")].count("ExecutionStarted") == 1
