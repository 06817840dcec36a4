"""Heartbeat progress and "nobody serves this step", as a user sees them against a real `cerebelum dev` (issue 15).

A step heartbeats progress and `describe` shows it; the attempt fails and the retry reads that
progress; a step that no worker serves says so in `describe` instead of waiting in silence.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cerebelum import Client
from tests.support.processes import ROOT, EngineProcess, run_cli, sqlite_engine

pytestmark = pytest.mark.slow

WORKER = Path(__file__).parent / "workers" / "progress_worker.py"
RETRIED = {"taskQueue": "progress", "timeline": ["batch"], "defaults": {"retry": {"initialInterval": "1s"}}}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    with sqlite_engine(tmp_path) as process:
        yield process


def shown(engine: EngineProcess, *args: str) -> str:
    """What the command printed, with the terminal's line wrapping undone."""
    finished = run_cli(engine, *args)
    assert finished.returncode == 0, finished.stderr
    return " ".join(finished.stdout.split())


def eventually_shown(check: Callable[[], str], wanted: str, *, within: float = 30.0) -> str:
    deadline = time.monotonic() + within
    while True:
        text = check()
        if wanted in text:
            return text
        assert time.monotonic() < deadline, f"never showed {wanted!r}; last: {text}"
        time.sleep(0.2)


def test_describe_shows_a_running_steps_progress_and_its_retry_resumes_from_it(
    engine: EngineProcess, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    with (tmp_path / "worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, str(WORKER)],
            env={**os.environ, "CEREBELUM_ADDRESS": engine.address, "GO": str(go)},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        with Client(engine.address) as client:
            client.apply_workflow("retried", RETRIED)
            client.start("retried", {}, execution_id="p1")
            text = eventually_shown(lambda: shown(engine, "describe", "p1"), 'Progress of batch: {"done":3}')
            assert "Running" in text
            as_json = run_cli(engine, "describe", "p1", "-o", "json").stdout
            assert '"progress"' in as_json and '"done": 3' in as_json

            go.touch()  # attempt 1 fails now; attempt 2 reads what attempt 1 last reported
            finished = client.wait("p1", timeout=60)
            assert finished.phase == "Succeeded", finished.error
            assert finished.output == {"attempt": 2, "resumed_from": {"done": 3}}
            history = client.history("p1")
            failed = [e for e in history if e.type == "StepFailed"]
            assert failed and failed[0].data["last_progress"] == {"done": 3}
            assert "Progress of" not in shown(engine, "describe", "p1"), "only a running step shows progress"
    finally:
        worker.terminate()
        worker.wait(timeout=15)


def test_describe_says_when_no_worker_polls_a_steps_queue_or_none_serves_the_step(
    engine: EngineProcess, tmp_path: Path
) -> None:
    with (tmp_path / "worker.log").open("ab") as log:
        worker = subprocess.Popen(  # serves queue "progress", step "batch" only
            [sys.executable, str(WORKER)],
            env={**os.environ, "CEREBELUM_ADDRESS": engine.address, "GO": str(tmp_path / "go")},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        with Client(engine.address) as client:
            client.apply_workflow("unserved", {"taskQueue": "nobody-here", "timeline": ["lonely"]})
            client.apply_workflow("misnamed", {"taskQueue": "progress", "timeline": ["batchh"]})
            client.start("unserved", {}, execution_id="h1")
            client.start("misnamed", {}, execution_id="h2")
            assert "waits:" not in shown(engine, "describe", "h1"), "no hint in the first seconds"
            eventually_shown(
                lambda: shown(engine, "describe", "h1"),
                "Step lonely waits: no worker has polled queue nobody-here for step lonely in the last 60 s",
            )
            eventually_shown(
                lambda: shown(engine, "describe", "h2"),
                "Step batchh waits: workers poll queue progress but none serves step batchh",
            )
            execution = client.get("h2")
            step = execution.step("batchh")
            assert step is not None and step.phase == "Scheduled"
            assert step.waiting_hint is not None and "none serves step batchh" in step.waiting_hint
    finally:
        worker.terminate()
        worker.wait(timeout=15)
