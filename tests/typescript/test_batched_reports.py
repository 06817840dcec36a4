"""A TypeScript worker's reports against a real engine: batched with CompleteTasks on this engine, and
one CompleteTask each on an engine that answers CompleteTasks with UNIMPLEMENTED (an older one)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cerebelum import AsyncClient, Client
from tests.integration.test_worker_batched_reports import older_engine

from .conftest import TS_WORKER, WorkerProcess, Workers, read_ledger

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

STEPS = ["after", "again", "last"]
FLOW = {
    "taskQueue": "test",
    "timeline": STEPS,
    "steps": {"again": {"function": "after"}, "last": {"function": "after"}},
}
FALLBACK_LINE = "has no CompleteTasks"


def test_a_typescript_worker_runs_many_executions_reporting_in_batches(
    workers: Workers, client: Client, ledger: Path
) -> None:
    worker = workers.typescript()
    client.apply_workflow("batched", FLOW)
    ids = [client.start("batched", {}).id for _ in range(30)]

    phases = [client.wait(execution_id, timeout=90).phase for execution_id in ids]

    assert phases == ["Succeeded"] * len(ids)
    runs = Counter((run["execution"], run["step"]) for run in read_ledger(ledger))
    assert runs == Counter({(execution_id, step): 1 for execution_id in ids for step in STEPS})
    assert FALLBACK_LINE not in worker.log(), "this engine serves CompleteTasks"


async def test_a_typescript_worker_against_an_engine_without_complete_tasks_reports_with_complete_task(
    node: str, ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with older_engine(tmp_path, monkeypatch) as server:
        address = f"127.0.0.1:{server.port}"
        worker = WorkerProcess([node, str(TS_WORKER)], address, ledger, tmp_path / "worker.log", "test").start()
        try:
            async with AsyncClient(address=address) as client:
                await client.apply_workflow("batched", FLOW)
                ids = [(await client.start("batched", {})).id for _ in range(5)]
                phases = [(await client.wait(execution_id, timeout=90)).phase for execution_id in ids]
        finally:
            worker.stop()

    assert phases == ["Succeeded"] * len(ids)
    assert worker.log().count(FALLBACK_LINE) == 1, worker.log()[-2000:]
    assert len(read_ledger(ledger)) == len(ids) * len(STEPS)
