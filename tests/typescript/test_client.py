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


LISTING = PACKAGE / "test" / "clients" / "list-executions.ts"


def test_the_guide_shows_the_listing_sample_exactly_as_the_test_below_runs_it() -> None:
    section = GUIDE.read_text().split("## Listing executions", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```ts\n(.*?)```", section, re.DOTALL)
    assert blocks == [LISTING.read_text()]


def test_the_listing_sample_filters_pages_and_reads_labels_against_a_real_engine(
    node: str, engine: EngineProcess, client: Client
) -> None:
    client.apply_workflow("greet", GREET)
    # Not the sample's: another workflow's execution with the same labels, and an unlabelled one.
    client.apply_workflow("other", GREET)
    client.start("other", None, execution_id="other-1", labels={"customer": "acme", "team": "sales"})
    client.start("greet", None, execution_id="unlabelled-1")

    ran = run_node(node, engine, "list-executions.js")

    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    # Keyset pages of 3: acme's four orders and the other workflow's execution, newest first.
    assert lines[0] == "order-7,order-5,order-3 | order-1,other-1 null"
    # listExecutions went through every page of 2 (4 requests): each order once, newest first,
    # as the Python client lists them, with its labels.
    paged = [line.split(" ") for line in lines[1:8]]
    sales = client.list(workflow="greet", labels={"team": "sales"})
    assert [id for id, _ in paged] == [e.id for e in sales] == [f"order-{n}" for n in range(7, 0, -1)]
    assert [customer for _, customer in paged] == ["acme" if n % 2 else "globex" for n in range(7, 0, -1)]
    assert all(e.labels == {"customer": dict(paged)[e.id], "team": "sales"} for e in sales)
    # Phases (any of them), id text (case ignored), created at or after / before order-5's creation.
    everything = client.list(limit=1000)
    since = client.get("order-5").created_at
    assert since is not None
    recent = [e.id for e in everything if e.created_at is not None and e.created_at >= since]
    older = [e.id for e in everything if e.created_at is not None and e.created_at < since]
    assert lines[8:] == ["order-3", "order-6", ",".join(recent), ",".join(older)]
    assert "order-5" in recent and "other-1" in older
