"""What a TypeScript worker tells the person debugging it, against a real `cerebelum dev`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebelum import Client
from tests.support.processes import free_port
from tests.support.security import CREDENTIAL_VARIABLES, GuardedEngine
from tests.support.waiting import wait_until

from .conftest import Workers, read_ledger

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TOKEN = "token-the-engine-came-back-with"
STEPS = "ts_double, ts_finish, slow, nap, ask, after, big, odd, boom, deaf"


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_a_failing_typescript_step_leaves_its_stack_trace_in_the_worker_log(workers: Workers, client: Client) -> None:
    worker = workers.typescript()
    client.apply_workflow(
        "failing", {"taskQueue": "test", "timeline": ["boom"], "defaults": {"retry": {"maxAttempts": 1}}}
    )
    execution = client.start("failing", {})
    final = client.wait(execution.id, timeout=60)
    assert final.phase == "Failed"
    line = f"step boom of execution {execution.id} failed on attempt 1 (retryable): TypeError: boom on attempt 1"
    wait_until(lambda: line in worker.log(), within=10, what="the failure's log line")
    trace = worker.log().split(line, 1)[1]
    assert trace.startswith("\nTypeError: boom on attempt 1\n    at "), trace[:500]
    assert "ledger-worker.js" in trace.split("\n\n", 1)[0]
    assert f"started: task queue test at {workers.address} (plaintext, no token); steps {STEPS}; " in worker.log()
    assert "up to 20 at once, 4 pollers" in worker.log()


@pytest.fixture
def late_engine(tmp_path: Path) -> Iterator[GuardedEngine]:
    """An engine not started yet, that will require a token when it is."""
    engine = GuardedEngine(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        log_path=tmp_path / "engine.log",
        port=free_port(),
        extra_args=("--token", TOKEN),
    )
    try:
        yield engine
    finally:
        engine.stop()


def test_after_an_outage_the_worker_logs_each_distinct_reason_once(
    node: str, late_engine: GuardedEngine, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    ledger.touch()
    workers = Workers(node=node, address=late_engine.address, ledger=ledger, log_dir=tmp_path)
    try:
        worker = workers.typescript()

        def refusals() -> list[str]:
            return [line for line in worker.log().splitlines() if "cannot poll test" in line]

        wait_until(lambda: len(refusals()) == 1, within=30, what="the first failure")
        assert "(UNAVAILABLE: " in refusals()[0]
        late_engine.start()
        wait_until(lambda: len(refusals()) == 2, within=30, what="the engine's refusal")
        assert "(UNAUTHENTICATED: " in refusals()[1]
        assert "the engine wants a valid bearer token" in refusals()[1]
        time.sleep(3)  # several more refused polls (the backoff stays below 5 s)
        assert len(refusals()) == 2, "\n".join(refusals())
    finally:
        workers.stop_all()


def test_a_typescript_step_that_cannot_be_interrupted_learns_it_missed_its_heartbeat_timeout(
    workers: Workers, client: Client, ledger: Path
) -> None:
    worker = workers.typescript()
    client.apply_workflow(
        "deaf",
        {
            "taskQueue": "test",
            "timeline": ["deaf"],
            "defaults": {"heartbeatTimeout": "1s", "retry": {"maxAttempts": 1}},
        },
    )
    execution = client.start("deaf", {"hold_s": 8})
    final = client.wait(execution.id, timeout=60)
    assert final.phase == "Failed"
    failed = [e.data for e in client.history(execution.id) if e.type == "StepFailed"]
    assert [f["error_type"] for f in failed] == ["HeartbeatTimeout"]
    wait_until(
        lambda: any(r["event"] == "told heartbeat_timeout" for r in read_ledger(ledger)),
        within=10,
        what="the step to be told",
    )
    runs = {r["event"]: r["at"] for r in read_ledger(ledger) if r["execution"] == execution.id}
    told_after = runs["told heartbeat_timeout"] - runs["run"]
    assert 0.9 <= told_after < 4, f"told {told_after:.1f} s after it started; the heartbeat timeout is 1 s"
    assert "finished" not in runs or runs["finished"] > runs["told heartbeat_timeout"]
    assert "did not heartbeat within its heartbeat timeout of 1 s" in worker.log()
    wait_until(lambda: "it missed its heartbeat timeout" in worker.log(), within=15, what="the outcome's drop")
