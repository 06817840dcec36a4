"""Pause, resume and bulk actions on a real engine and real workers, SQLite and PostgreSQL (issue 19)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cerebelum import Client
from tests.integration.conftest import read_ledger
from tests.support.processes import EngineProcess, WorkerProcess, run_cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

GATED = {"timeline": ["gated", "a", "b"], "taskQueue": "test"}


def runs(ledger: Path, execution: str, step: str) -> list[dict[str, object]]:
    return [e for e in read_ledger(ledger) if e["execution"] == execution and e["step"] == step and e["event"] == "run"]


def test_a_paused_execution_lets_its_running_step_finish_holds_the_next_across_a_sigkill_and_resumes(
    engine: EngineProcess,
    client: Client,
    start_worker: Callable[[], WorkerProcess],
    ledger: Path,
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    client.apply_workflow("gated", GATED)
    start_worker()
    client.start("gated", {"gate": str(gate)}, execution_id="p1")
    wait_until(
        lambda: any(e["step"] == "gated" and e["event"] == "start" for e in read_ledger(ledger)),
        within=60,
        what="the gated step running",
    )

    paused = run_cli(engine, "pause", "p1", "--reason", "database maintenance", "-o", "json")
    assert paused.returncode == 0, paused.stderr
    shown = json.loads(paused.stdout)
    assert shown["phase"] == "Paused"
    assert [(p["source"], p["reason"]) for p in shown["pauses"]] == [("user", "database maintenance")]

    gate.touch()  # the running step finishes while paused; the next one must not start
    wait_until(lambda: client.get("p1").step("a") is not None, within=60, what="step a reached")
    held = client.get("p1")
    assert held.phase == "Paused"
    assert held.step("a").phase == "Held"  # type: ignore[union-attr]
    assert held.step("gated").phase == "Succeeded"  # type: ignore[union-attr]

    engine.restart()  # SIGKILL: the pause and the held step are in the history
    with Client(engine.address) as again:
        after = again.get("p1")
        assert after.phase == "Paused" and after.step("a").phase == "Held"  # type: ignore[union-attr]
        assert runs(ledger, "p1", "a") == []

        resumed = run_cli(engine, "resume", "p1")
        assert resumed.returncode == 0, resumed.stderr
        finished = again.wait("p1", timeout=60)

        assert finished.phase == "Succeeded", finished.error
        assert finished.pauses == ()
        kinds = [event.type for event in again.history("p1")]
    assert kinds.count("ExecutionPaused") == kinds.count("ExecutionResumed") == kinds.count("StepHeld") == 1
    assert kinds.index("ExecutionPaused") < kinds.index("StepHeld") < kinds.index("ExecutionResumed")
    assert len(runs(ledger, "p1", "a")) == len(runs(ledger, "p1", "b")) == 1


# Selection and reporting logic; pauses across kills on both stores are the tests above.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bulk_actions_pause_and_cancel_what_a_query_matches_and_report_each_execution(
    engine: EngineProcess, client: Client
) -> None:
    client.apply_workflow("queued", {"timeline": ["a"], "taskQueue": "nobody-polls"})
    client.apply_workflow("other", {"timeline": ["a"], "taskQueue": "nobody-polls"})
    for index in range(3):
        client.start("queued", {}, execution_id=f"q{index}")
    client.start("other", {}, execution_id="o1")

    refused = run_cli(engine, "bulk", "cancel")
    assert refused.returncode == 1
    assert "acting on every execution needs 'all'" in refused.stderr

    dry = json.loads(run_cli(engine, "pause", "--workflow", "queued", "--dry-run", "-o", "json").stdout)
    assert sorted(o["id"] for o in dry["outcomes"]) == ["q0", "q1", "q2"]
    assert client.get("q0").phase == "Running"  # a dry run changes nothing

    paused = run_cli(engine, "pause", "--workflow", "queued", "-o", "json")
    assert paused.returncode == 0, paused.stderr
    assert {o["result"] for o in json.loads(paused.stdout)["outcomes"]} == {"done"}
    again = json.loads(run_cli(engine, "pause", "--workflow", "queued", "-o", "json").stdout)
    assert {o["result"] for o in again["outcomes"]} == {"unchanged"}
    assert client.get("o1").phase == "Running"  # another workflow's execution is untouched

    cancelled = run_cli(engine, "bulk", "cancel", "--phase", "Paused", "--reason", "cleanup")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "3 done, 0 unchanged, 0 failed" in cancelled.stdout
    for index in range(3):
        ended = client.get(f"q{index}")
        assert ended.phase == "Cancelled" and ended.error == "cleanup"

    partly = json.loads(run_cli(engine, "bulk", "pause", "o1", "nope", "-o", "json").stdout)
    results = {o["id"]: (o["result"], o["error"]) for o in partly["outcomes"]}
    assert results["o1"] == ("done", None)
    assert results["nope"][0] == "failed" and "not found" in results["nope"][1]


def test_a_reset_runs_again_from_a_step_keeping_the_results_before_it_and_cancels_the_old_run(
    engine: EngineProcess,
    client: Client,
    start_worker: Callable[[], WorkerProcess],
    ledger: Path,
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    client.apply_workflow("stuck", {"timeline": ["a", "gated", "b"], "taskQueue": "test"})
    start_worker()
    client.start("stuck", {"gate": str(gate)}, execution_id="old")
    wait_until(
        lambda: any(e["step"] == "gated" and e["event"] == "start" for e in read_ledger(ledger)),
        within=60,
        what="the gated step running",
    )

    reset = run_cli(engine, "reset", "old", "gated", "--new-id", "again", "--reason", "stuck", "-o", "json")
    assert reset.returncode == 0, reset.stderr
    assert json.loads(reset.stdout)["resetFrom"] == "old"
    gate.touch()  # the new run's gated step may finish now

    finished = client.wait("again", timeout=60)
    assert finished.phase == "Succeeded", finished.error
    assert client.get("old").phase == "Cancelled" and client.get("old").error == "stuck"
    assert runs(ledger, "old", "a") and not runs(ledger, "again", "a")  # carried, not run again
    assert len(runs(ledger, "again", "gated")) == len(runs(ledger, "again", "b")) == 1
    history = client.history("again")
    carried = next(e for e in history if e.type == "ExecutionReset")
    assert carried.data["from_id"] == "old" and set(carried.data["results"]) == {"a"}
