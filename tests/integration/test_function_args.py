"""One worker function serving two workflow steps with their own args, on a real engine and worker (issue 16).

The workflow's `small` and `large` both name the function `resize`, which the worker registers
once, and pass it a different `width` (CEL over the input) and the same `url` (CEL over an
earlier step's result). Each task runs `resize` as its own workflow step: results, history and
idempotency keys are the step's, the function's parameters are filled from the arguments.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebelum import Client
from tests.support.processes import EngineProcess, WorkerPool, run_cli

pytestmark = pytest.mark.slow

WORKER = Path(__file__).parent / "workers" / "args_worker.py"
THUMBNAILS = {
    "taskQueue": "test",
    "timeline": ["fetch", ["small", "large"]],
    "steps": {
        "small": {"function": "resize", "args": {"width": "128", "url": "steps.fetch.url"}},
        "large": {"function": "resize", "args": {"width": "input.width * 2", "url": "steps.fetch.url"}},
    },
}


@pytest.fixture
def workers(engine: EngineProcess, ledger: Path, tmp_path: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(script=WORKER, address=engine.address, ledger=ledger, log_dir=tmp_path)
    yield pool
    pool.stop_all()


def test_one_function_runs_as_two_steps_each_with_its_own_args_step_name_and_idempotency_key(
    engine: EngineProcess, workers: WorkerPool, client: Client
) -> None:
    workers.start()
    client.apply_workflow("thumbnails", THUMBNAILS)
    client.start("thumbnails", {"width": 512}, execution_id="t1")

    finished = client.wait("t1", timeout=60)

    assert finished.phase == "Succeeded", finished.error
    url = "s3://images/t1.png"
    assert finished.output == {
        "small": {"step": "small", "function": "resize", "width": 128, "url": url, "key": "t1/small/1"},
        "large": {"step": "large", "function": "resize", "width": 1024, "url": url, "key": "t1/large/1"},
    }
    assert finished.output["small"]["key"] != finished.output["large"]["key"]
    history = json.loads(run_cli(engine, "history", "t1", "-o", "json").stdout)
    completed = [e["data"]["step"] for e in history if e["type"] == "StepCompleted"]
    assert completed[0] == "fetch" and sorted(completed[1:]) == ["large", "small"]
