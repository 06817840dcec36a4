"""A TypeScript worker given two engines that split one PostgreSQL store's shards serves both."""

from __future__ import annotations

from pathlib import Path

import pytest

from cerebelum import Client
from cerebelum_operator.model.shards import DEFAULT_SHARDS, shard_of
from tests.support.processes import EngineProcess

from .conftest import Workers, read_ledger

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(180)]


def test_one_typescript_worker_polls_both_engines_and_reports_to_each(
    node: str, postgres_database_url: str, tmp_path: Path, ledger: Path
) -> None:
    engines = [
        EngineProcess(
            database_url=postgres_database_url,
            log_path=tmp_path / f"engine-{name}.log",
            extra_args=("--shards", shards, "--replica", name),
        )
        for name, shards in (("a", "0-7"), ("b", "8-15"))
    ]
    pool = Workers(node=node, address=",".join(e.address for e in engines), ledger=ledger, log_dir=tmp_path)
    try:
        for engine in engines:
            engine.start()
        worker = pool.typescript("ts")
        halves = [
            [f"t{n}" for n in range(200) if shard_of(f"t{n}", shards=DEFAULT_SHARDS) // 8 == h][:3] for h in (0, 1)
        ]
        with Client(address=engines[0].address) as client:
            client.apply_workflow("after", {"taskQueue": "ts", "timeline": ["after"]})
            for execution_id in halves[0] + halves[1]:
                client.start("after", None, execution_id=execution_id)
            for execution_id in halves[0] + halves[1]:
                assert client.wait(execution_id, timeout=60).phase == "Succeeded"
        runs = {r["execution"]: r["pid"] for r in read_ledger(ledger)}
        assert runs == dict.fromkeys(halves[0] + halves[1], worker.pid)
    finally:
        pool.stop_all()
        for engine in engines:
            engine.stop()
