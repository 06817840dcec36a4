"""The idempotency key a real worker sees: one per run of a step, the same across its retries (issue 16).

A workflow loops three times through a branch `goto`; its step `charge` fails once and is retried
in every iteration. The key must differ between iterations (a worker that deduplicates on it must
not skip the second charge) and be equal across the retries of one iteration (so a payment API
given it charges once however often the attempt is retried).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebelum import Client
from tests.support.processes import ROOT, EngineProcess, sqlite_engine

pytestmark = pytest.mark.slow

WORKER = Path(__file__).parent / "workers" / "keys_worker.py"
LOOP = {
    "taskQueue": "keys",
    "timeline": ["charge", "check"],
    "defaults": {"retry": {"maxAttempts": 3, "initialInterval": "100ms", "jitter": 0}},
    "branch": {"check": [{"when": "result.again", "goto": "charge", "maxIterations": 5}]},
}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    with sqlite_engine(tmp_path) as process:
        yield process


def test_the_key_is_new_for_each_loop_iteration_and_the_same_for_the_retries_of_one(
    engine: EngineProcess, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.jsonl"
    with (tmp_path / "worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, str(WORKER)],
            env={**os.environ, "CEREBELUM_ADDRESS": engine.address, "KEYS": str(keys)},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        with Client(engine.address) as client:
            client.apply_workflow("loop", LOOP)
            client.start("loop", {}, execution_id="x1")
            finished = client.wait("x1", timeout=60)
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    assert finished.phase == "Succeeded", finished.error
    seen = [json.loads(line) for line in keys.read_text().splitlines()]
    charges = [(s["run"], s["attempt"], s["key"]) for s in seen if s["step"] == "charge"]
    assert charges == [
        (1, 1, "x1/charge/1"),
        (1, 2, "x1/charge/1"),
        (2, 1, "x1/charge/2"),
        (2, 2, "x1/charge/2"),
        (3, 1, "x1/charge/3"),
        (3, 2, "x1/charge/3"),
    ]
    assert [s["key"] for s in seen if s["step"] == "check"] == ["x1/check/1", "x1/check/2", "x1/check/3"]
    assert finished.output == {"again": False}
