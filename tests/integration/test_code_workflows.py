"""Code workflows on a real engine, store and worker processes (issue 18).

The seed's section 4.1 scenario as code: a loop of checks with durable sleeps between them, an
approval and parallel steps; the worker holding the workflow SIGKILLed during a sleep (another
worker replays the history and carries on), and separately the engine SIGKILLed. No completed
step runs again, and the history has no gap. Then non-determinism: code changed under an
execution in flight fails its workflow task (never the execution) with the event and the
command named, `cerebelum replay` catches the same change from a saved history, and fixed code
lets the execution finish. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cerebelum import Client
from tests.support.processes import ROOT, EngineProcess, WorkerPool, WorkerProcess, run_cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

WORKER = Path(__file__).parent / "workers" / "provision_worker.py"
PROVISION = {"taskQueue": "test", "code": {"function": "provision"}}
ND_DEMO = {"taskQueue": "test", "code": {"function": "nd_demo"}}


@pytest.fixture
def workers(engine: EngineProcess, ledger: Path, tmp_path: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(script=WORKER, address=engine.address, ledger=ledger, log_dir=tmp_path)
    yield pool
    pool.stop_all()


def ledger_runs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def events(client: Client, execution_id: str) -> list[Any]:
    return list(client.history(execution_id))


def sleeping(client: Client, execution_id: str) -> bool:
    history = events(client, execution_id)
    started = sum(1 for e in history if e.type == "SleepStarted")
    ended = sum(1 for e in history if e.type == "SleepEnded")
    return started > ended


def assert_each_step_ran_once_and_the_history_has_no_gap(client: Client, ledger: Path, execution_id: str) -> None:
    runs = Counter(run["step"] for run in ledger_runs(ledger) if run["execution"] == execution_id)
    assert runs and max(runs.values()) == 1, f"a completed step ran again: {runs}"
    seqs = [e.seq for e in events(client, execution_id)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_the_wait_for_ip_loop_survives_a_worker_sigkill_during_a_sleep_replaying_on_another_worker(
    engine: EngineProcess, workers: WorkerPool, client: Client, ledger: Path, tmp_path: Path
) -> None:
    client.apply_workflow("provision", PROVISION)
    first = workers.start()
    client.start("provision", {"region": "ams3", "poll": "2s"}, execution_id="prov-1")
    wait_until(lambda: sleeping(client, "prov-1"), within=60, what="the first durable sleep")

    first.kill()  # the worker holding the workflow in its cache, in the middle of the loop
    workers.start()
    wait_until(
        lambda: client.get("prov-1").phase == "WaitingForApproval", within=90, what="the loop to end on another worker"
    )
    approved = run_cli(engine, "approve", "prov-1", "go_live", "--approver", "ops@example.com")
    assert approved.returncode == 0, approved.stderr
    finished = client.wait("prov-1", timeout=90)

    assert finished.phase == "Succeeded", finished.error
    assert finished.output == {"ip": "10.0.0.7", "approver": "ops@example.com", "hosts": ["a", "b", "c"]}
    assert_each_step_ran_once_and_the_history_has_no_gap(client, ledger, "prov-1")
    history = events(client, "prov-1")
    takers = {e.data["worker_id"] for e in history if e.type == "WorkflowTaskStarted"}
    assert len(takers) == 2, "the second worker replayed the history the first one had cached"
    assert sum(1 for e in history if e.type == "SleepEnded") == 2, "three checks, a durable sleep between each"
    # A step's result and the code's next commands went in one commit where the step's worker held the
    # code (a continuation: its task's WorkflowTaskStarted carries the code's time), and the history
    # such tasks make replays as any other.
    assert any("time_ms" in e.data for e in history if e.type == "WorkflowTaskStarted")
    saved = tmp_path / "prov-1.json"
    dumped = run_cli(engine, "history", "prov-1", "-o", "json")
    assert dumped.returncode == 0, dumped.stderr
    saved.write_text(dumped.stdout)
    replayed = replay(saved, version="1", function="provision")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    lines = tmp_path / "prov-1.jsonl"  # as the retention period exports a history: one event a line
    lines.write_text("".join(json.dumps(event) + "\n" for event in json.loads(dumped.stdout)))
    assert replay(lines, version="1", function="provision").returncode == 0


def test_the_wait_for_ip_loop_survives_an_engine_sigkill_during_a_sleep(
    engine: EngineProcess, workers: WorkerPool, client: Client, ledger: Path
) -> None:
    client.apply_workflow("provision", PROVISION)
    workers.start()
    client.start("provision", {"region": "fra1", "poll": "2s"}, execution_id="prov-2")
    wait_until(lambda: sleeping(client, "prov-2"), within=60, what="the first durable sleep")

    engine.kill()
    engine.start()
    with Client(address=engine.address) as again:
        wait_until(
            lambda: again.get("prov-2").phase == "WaitingForApproval", within=90, what="the loop after the restart"
        )
        again.approve("prov-2", "go_live", approver="ops@example.com")
        finished = again.wait("prov-2", timeout=90)
        assert finished.phase == "Succeeded", finished.error
        assert_each_step_ran_once_and_the_history_has_no_gap(again, ledger, "prov-2")


# Replay logic in the worker; the store-specific part (a sticky loop across kills) runs on both.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_changed_code_fails_the_workflow_task_naming_the_event_and_fixed_code_finishes_the_execution(
    engine: EngineProcess, workers: WorkerPool, client: Client, ledger: Path, tmp_path: Path
) -> None:
    client.apply_workflow("nd-demo", ND_DEMO)
    original = workers.start()
    client.start("nd-demo", {}, execution_id="nd-1")
    wait_until(lambda: client.get("nd-1").phase == "WaitingForSignal", within=60, what="the wait for a signal")
    saved = tmp_path / "nd-1.json"
    dumped = run_cli(engine, "history", "nd-1", "-o", "json")
    assert dumped.returncode == 0, dumped.stderr
    saved.write_text(dumped.stdout)

    # The check a team runs before deploying: the renamed step is caught from the saved history.
    assert replay(saved, version="1").returncode == 0
    caught = replay(saved, version="2")
    assert caught.returncode == 1
    assert "non-determinism" in caught.stdout and "renamed" in caught.stdout and "first" in caught.stdout

    original.kill()
    changed = workers.start(CODE_VERSION="2")
    client.signal("nd-1", "go", "go")  # the code has something to see: a worker replays it
    wait_until(lambda: client.get("nd-1").workflow_task_error is not None, within=60, what="the failing task")
    info = client.get("nd-1")
    assert info.phase not in ("Failed", "Succeeded")
    assert info.workflow_task_error is not None and info.workflow_task_error.startswith("NonDeterminism")
    described = run_cli(engine, "describe", "nd-1").stdout
    assert "Workflow task failing: NonDeterminism" in described

    changed.kill()
    workers.start(CODE_VERSION="1")  # the fix deployed
    finished = client.wait("nd-1", timeout=90)
    assert finished.phase == "Succeeded", finished.error
    assert finished.output == "first then go then first"
    assert finished.workflow_task_error is None
    assert not any(run["function"] == "renamed" for run in ledger_runs(ledger)), "the changed code ran no step"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the loop is the point, not the store
def test_a_loop_of_a_thousand_iterations_continues_as_new_every_250_and_ends_with_the_count(
    engine: EngineProcess, workers: WorkerPool, client: Client
) -> None:
    client.apply_workflow("counter", {"taskQueue": "test", "code": {"function": "counter"}})
    workers.start()
    client.start("counter", {"count": 0, "until": 1000, "per_run": 250}, execution_id="count-1")

    finished = client.wait("count-1", timeout=180, follow_runs=True)

    assert finished.phase == "Succeeded", finished.error
    assert finished.output == 1000
    assert finished.run == 5, "four runs of 250 iterations, and a fifth that sees the count reached"
    runs = [client.get(f"count-1:run-{n}") if n > 1 else client.get("count-1") for n in range(1, 6)]
    assert [run.phase for run in runs] == ["ContinuedAsNew"] * 4 + ["Succeeded"]
    assert max(run.event_count for run in runs) < 2000, "each run's history stays small"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_guide_s_example_runs_as_a_reader_runs_it(engine: EngineProcess, ledger: Path, tmp_path: Path) -> None:
    example = ROOT / "examples" / "code-provision"
    applied = run_cli(engine, "apply", "-f", str(example / "workflow.yaml"))
    assert applied.returncode == 0, applied.stderr
    worker = WorkerProcess(
        script=example / "worker.py", address=engine.address, ledger=ledger, log_path=tmp_path / "example.log"
    ).start()
    try:
        started = run_cli(engine, "start", "provision-code", "--input", '{"region": "ams3"}', "--id", "guide-1")
        assert started.returncode == 0, started.stderr
        with Client(address=engine.address) as client:
            wait_until(lambda: client.get("guide-1").phase == "WaitingForApproval", within=60, what="the approval")
            assert run_cli(engine, "approve", "guide-1", "go_live").returncode == 0
            finished = client.wait("guide-1", timeout=60)
    finally:
        worker.stop()
    assert finished.phase == "Succeeded", finished.error
    assert finished.output == {"ip": "203.0.113.10", "hosts": ["web-1", "web-2"]}


def replay(history: Path, *, version: str, function: str = "nd_demo") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "cerebelum_operator.cli", "replay", str(history)),
            *("--function", f"tests.integration.workers.provision_worker:{function}"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "CODE_VERSION": version, "LEDGER": "/dev/null"},
        timeout=60,
        check=False,
    )
