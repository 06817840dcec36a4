"""Integration fixtures: a real engine process on a real SQLite file or PostgreSQL server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cerebelum import Client
from tests.support.processes import EngineProcess, WorkerPool, WorkerProcess

WORKER_SCRIPT = Path(__file__).parent / "workers" / "ledger_worker.py"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'engine.db'}"
    url: str = request.getfixturevalue("postgres_database_url")
    return url


@pytest.fixture
def engine(database_url: str, tmp_path: Path) -> Iterator[EngineProcess]:
    process = EngineProcess(database_url=database_url, log_path=tmp_path / "engine.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.jsonl"
    path.touch()
    return path


@pytest.fixture
def start_worker(engine: EngineProcess, ledger: Path, tmp_path: Path) -> Iterator[Callable[[], WorkerProcess]]:
    pool = WorkerPool(script=WORKER_SCRIPT, address=engine.address, ledger=ledger, log_dir=tmp_path)
    yield pool.start
    pool.stop_all()


@pytest.fixture
def client(engine: EngineProcess) -> Iterator[Client]:
    with Client(address=engine.address) as connected:
        yield connected


def read_ledger(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
