"""Flow control and paused workflows on a real engine and real workers, SQLite and PostgreSQL (issue 19).

The limit is checked from the histories alone: each execution runs from its admission (the
`ExecutionResumed` of its "concurrency" hold) to its end, and no two of one key may overlap.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cerebelum import Client
from tests.integration.conftest import read_ledger
from tests.support.flow import running_span
from tests.support.processes import EngineProcess, WorkerProcess, run_cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

ONE_PER_CUSTOMER = {
    "timeline": ["a", "nap", "b"],
    "taskQueue": "test",
    "flowControl": {"key": "input.customer", "concurrency": 1, "priority": "input.urgent ? 1 : 0"},
}


def test_one_execution_per_key_runs_at_a_time_across_an_engine_sigkill_and_waiting_ones_say_why(
    engine: EngineProcess, client: Client, start_worker: Callable[[], WorkerProcess]
) -> None:
    client.apply_workflow("orders", ONE_PER_CUSTOMER)
    keys = {"acme": 4, "zeta": 3}
    ids = [f"{key}-{n}" for key, count in keys.items() for n in range(count)]
    for execution_id in ids:
        customer = execution_id.split("-")[0]
        client.start("orders", {"customer": customer, "urgent": False, "sleep_ms": 300}, execution_id=execution_id)

    waiting = json.loads(run_cli(engine, "describe", "acme-3", "-o", "json").stdout)
    assert waiting["phase"] == "Queued", waiting
    assert "at most 1 execution runs at once for key 'acme'" in waiting["pauses"][0]["reason"]

    start_worker()
    wait_until(lambda: client.get("acme-0").is_terminal, within=60, what="the first of acme done")
    engine.restart()  # SIGKILL while others run, sleep and wait for their turn

    with Client(engine.address) as again:
        for execution_id in ids:
            finished = again.wait(execution_id, timeout=120)
            assert finished.phase == "Succeeded", (execution_id, finished.error)
        for key, count in keys.items():
            spans = sorted(running_span(again, f"{key}-{n}") for n in range(count))
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert start >= end, f"two executions of {key!r} ran at once: {spans}"


def test_a_paused_workflow_holds_its_new_executions_until_it_is_resumed(
    engine: EngineProcess, client: Client, start_worker: Callable[[], WorkerProcess]
) -> None:
    client.apply_workflow("quiet", {"timeline": ["a"], "taskQueue": "test"})
    start_worker()
    client.start("quiet", {}, execution_id="before")
    assert client.wait("before", timeout=60).phase == "Succeeded"

    paused = run_cli(engine, "pause-workflow", "quiet", "--reason", "release freeze", "-o", "json")
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout)["pause"]["reason"] == "release freeze"
    client.start("quiet", {}, execution_id="during")
    held = client.get("during")
    assert held.phase == "Paused" and [p.source for p in held.pauses] == ["workflow"]
    assert held.step("a").phase == "Held"  # type: ignore[union-attr]
    listed = json.loads(run_cli(engine, "get", "workflows", "-o", "json").stdout)
    assert [w["pause"]["reason"] for w in listed if w["name"] == "quiet"] == ["release freeze"]

    resumed = run_cli(engine, "resume-workflow", "quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert client.wait("during", timeout=60).phase == "Succeeded"
    client.start("quiet", {}, execution_id="after")
    assert client.wait("after", timeout=60).phase == "Succeeded"


def test_a_key_s_rate_limit_holds_from_the_histories_and_a_higher_priority_goes_first(
    engine: EngineProcess, client: Client, start_worker: Callable[..., WorkerProcess], ledger: Path
) -> None:
    client.apply_workflow(
        "metered",
        {
            "timeline": ["a"],
            "taskQueue": "test",
            "flowControl": {
                "key": "input.customer",
                "priority": "input.urgent ? 10 : 0",
                "rateLimit": {"tasks": 2, "per": "2s"},
            },
        },
    )
    ids = [f"m{n}" for n in range(5)]
    for execution_id in ids:  # queued with no worker: the order they go out in is the dispatcher's
        client.start("metered", {"customer": "acme", "urgent": False}, execution_id=execution_id)
    client.start("metered", {"customer": "zeta", "urgent": True}, execution_id="urgent")
    start_worker(MAX_CONCURRENCY="1")

    for execution_id in [*ids, "urgent"]:
        assert client.wait(execution_id, timeout=60).phase == "Succeeded"
    order = [e["execution"] for e in read_ledger(ledger) if e["step"] == "a"]
    assert order[0] == "urgent", order
    starts = sorted(
        event.at.timestamp()
        for execution_id in ids
        for event in client.history(execution_id)
        if event.type == "StepStarted" and event.at is not None
    )
    assert len(starts) == 5
    for first, third in zip(starts, starts[2:], strict=False):
        assert third - first >= 2.0 - 0.002, f"three of key 'acme' started within 2 s: {starts}"
