"""Why a step failed, end to end: a real Python worker against a real `cerebelum dev` (issue 15).

A step's exception used to leave no traceback anywhere (the SDK sent it, the engine dropped it),
and a step that no worker serves sat `Scheduled` forever.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebelum import Client
from tests.support.processes import EngineProcess, WorkerProcess, run_cli, sqlite_engine

pytestmark = pytest.mark.slow

WORKER = Path(__file__).parent / "workers" / "failing_worker.py"
MESSAGE = "card 4242 declined: see [/var/log/cards] [red]now[/red]"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    directory = tmp_path_factory.mktemp("step-failures")
    with sqlite_engine(directory) as process:
        worker = WorkerProcess(
            script=WORKER, address=process.address, ledger=directory / "unused", log_path=directory / "worker.log"
        ).start()
        try:
            yield process
        finally:
            worker.stop()


@pytest.fixture(scope="module")
def client(engine: EngineProcess) -> Iterator[Client]:
    with Client(engine.address) as client:
        yield client


def cerebelum(engine: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(engine, *args)


@pytest.fixture(scope="module")
def exploded(client: Client) -> str:
    client.apply_workflow(
        "explode", {"taskQueue": "test", "timeline": ["explode"], "defaults": {"retry": {"maxAttempts": 1}}}
    )
    execution = client.wait(client.start("explode", {}).id, timeout=60)
    assert execution.phase == "Failed", execution
    return execution.id


def test_the_stack_trace_of_a_failed_step_reaches_the_execution_view(client: Client, exploded: str) -> None:
    step = client.get(exploded).step("explode")

    assert step is not None and step.last_error is not None and MESSAGE in step.last_error
    trace = step.last_stacktrace or ""
    assert trace.startswith("Traceback (most recent call last):"), trace
    assert "in charge_the_card" in trace and f"ValueError: {MESSAGE}" in trace


def test_describe_shows_the_stack_trace_of_a_failed_step_as_written_and_inert(
    engine: EngineProcess, exploded: str
) -> None:
    finished = cerebelum(engine, "describe", exploded)

    assert finished.returncode == 0, finished.stderr
    assert "Stack trace of step explode, last failure: ValueError: " + MESSAGE in finished.stdout
    assert "in charge_the_card" in finished.stdout
    assert f"ValueError: {MESSAGE} \\x1b[2J" in finished.stdout  # markup kept, the escape shown, not sent
    assert "\x1b" not in finished.stdout


def test_history_and_describe_as_json_carry_the_stack_trace(engine: EngineProcess, exploded: str) -> None:
    events = json.loads(cerebelum(engine, "history", exploded, "-o", "json").stdout)
    (failed,) = [event for event in events if event["type"] == "StepFailed"]
    described = json.loads(cerebelum(engine, "describe", exploded, "-o", "json").stdout)

    assert "in charge_the_card" in failed["data"]["stacktrace"]
    assert described["steps"][0]["lastStacktrace"] == failed["data"]["stacktrace"]
    table = cerebelum(engine, "history", exploded)
    assert "stacktrace=(" in table.stdout and "Traceback" not in table.stdout  # a row says it is there


def test_a_step_no_worker_serves_fails_after_its_schedule_to_start_timeout(
    engine: EngineProcess, client: Client
) -> None:
    client.apply_workflow(
        "unserved",
        {"taskQueue": "nobody-polls-this", "timeline": ["explode"], "defaults": {"scheduleToStartTimeout": "1s"}},
    )

    execution = client.wait(client.start("unserved", {}).id, timeout=60)

    assert execution.phase == "Failed", execution
    assert "ScheduleToStartTimeout" in (execution.error or "") and "not retryable" in (execution.error or "")
    assert [letter.step for letter in client.dead_letters(execution_id=execution.id)] == ["explode"]


def test_a_step_a_worker_takes_in_time_may_run_longer_than_its_schedule_to_start_timeout(client: Client) -> None:
    client.apply_workflow(
        "served", {"taskQueue": "test", "timeline": ["slowly"], "defaults": {"scheduleToStartTimeout": "1s"}}
    )

    execution = client.wait(client.start("served", {}).id, timeout=60)

    assert execution.phase == "Succeeded", execution
    assert execution.output == {"slowly": "done"}
