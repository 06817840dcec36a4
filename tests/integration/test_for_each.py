"""forEach over a list made at run time, on a real engine, store and worker processes (issue 16).

A thousand parcels are labelled by one worker function, fifty at a time, while the engine is
SIGKILLed and restarted half-way: the execution still succeeds with every label in parcel order,
each item's outcome is recorded exactly once, and no item runs again after it completed. On
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cerebelum import Client
from tests.support.processes import EngineProcess, WorkerPool, run_cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

WORKER = Path(__file__).parent / "workers" / "fan_worker.py"


def labelling(*, concurrency: int, on_item_failure: str = "failFast") -> dict[str, Any]:
    return {
        "taskQueue": "test",
        "timeline": ["parcels", "label"],
        "steps": {
            "label": {
                "forEach": {
                    "items": "steps.parcels.names",
                    "concurrency": concurrency,
                    "onItemFailure": on_item_failure,
                },
                "args": {"parcel": "item", "position": "index", "broken": "index in input.failing"},
            }
        },
    }


@pytest.fixture
def workers(engine: EngineProcess, ledger: Path, tmp_path: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(script=WORKER, address=engine.address, ledger=ledger, log_dir=tmp_path)
    yield pool
    pool.stop_all()


def completed_items(client: Client, execution_id: str) -> list[Any]:
    return [e for e in client.history(execution_id) if e.type == "ItemCompleted"]


def test_a_thousand_items_survive_an_engine_sigkill_each_recorded_once_and_none_run_after_it_completed(
    engine: EngineProcess, workers: WorkerPool, client: Client, ledger: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"  # items from 400 on wait for it: the kill comes while they run
    workers.start(GATE=str(gate), GATE_FROM="400")
    workers.start(GATE=str(gate), GATE_FROM="400")
    client.apply_workflow("labelling", labelling(concurrency=50))
    client.start("labelling", {"count": 1000, "failing": []}, execution_id="fan-1")

    wait_until(lambda: len(completed_items(client, "fan-1")) >= 200, within=120, what="200 items completed")
    done_before_the_kill = len(completed_items(client, "fan-1"))
    (step,) = [s for s in client.get("fan-1").steps if s.name == "label"]
    assert step.items is not None and step.items.total == 1000
    assert step.items.done >= 200 and 0 < step.items.in_flight <= 50 and step.items.failed == 0
    described = run_cli(engine, "describe", "fan-1").stdout
    assert "Items of label: " in described and "of 1,000 done" in described
    engine.kill()
    engine.start()
    gate.touch()
    finished = Client(address=engine.address).wait("fan-1", timeout=300)

    assert done_before_the_kill < 900, "the engine was killed in the middle of the fan-out"
    assert finished.phase == "Succeeded", finished.error
    assert [s.items for s in finished.steps] == [None, None], "progress of items only while they run"
    assert finished.output == [{"label": f"P{i}", "key": f"fan-1/label/1/{i}"} for i in range(1000)]
    with Client(address=engine.address) as again:
        history = again.history("fan-1")
    items = [e.data["item"] for e in history if e.type == "ItemCompleted"]
    assert sorted(items) == list(range(1000)), "each item's outcome recorded exactly once"
    assert len(history) < 1100, "one event per item, not one per schedule, lease and outcome"
    completed_at = {e.data["item"]: e.at.timestamp() for e in history if e.type == "ItemCompleted" and e.at}
    runs: dict[int, list[float]] = defaultdict(list)
    for line in ledger.read_text().splitlines():
        run = json.loads(line)
        runs[run["position"]].append(run["at"])
    assert set(runs) == set(range(1000))
    rerun = {item: at for item, ats in runs.items() for at in ats if at > completed_at[item]}
    assert not rerun, f"items run again after they completed: {sorted(rerun)[:10]}"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_fail_fast_fails_the_step_naming_the_item_and_collect_keeps_each_error_in_its_place(
    engine: EngineProcess, workers: WorkerPool, client: Client
) -> None:
    workers.start()
    client.apply_workflow("fast", labelling(concurrency=2))
    client.apply_workflow("collecting", labelling(concurrency=2, on_item_failure="collect"))
    client.start("fast", {"count": 6, "failing": [3]}, execution_id="fast-1")
    client.start("collecting", {"count": 4, "failing": [1]}, execution_id="collect-1")

    failed = client.wait("fast-1", timeout=60)
    collected = client.wait("collect-1", timeout=60)

    assert failed.phase == "Failed"
    assert "item 3 of 6 failed after 1 attempt: parcel p3 has no address" in (failed.error or "")
    assert collected.phase == "Succeeded", collected.error
    assert collected.output[1] == {"error": {"type": "NoAddress", "message": "parcel p1 has no address"}}
    assert [o.get("label") for o in collected.output] == ["P0", None, "P2", "P3"]
