"""Fixtures for the TypeScript SDK: the package built once, a real engine, real worker processes.

Node.js and npm come from the machine; scripts/setup.sh installs the package's dependencies
(`npm ci`). Without node or npm these tests are skipped on a laptop and fail in CI (CI=true).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cerebelum import Client, Execution
from tests.support.processes import ROOT, EngineProcess, sqlite_engine

PACKAGE = ROOT / "worker-sdk" / "typescript"
TS_WORKER = PACKAGE / "build" / "test" / "workers" / "ledger-worker.js"
PY_WORKER = Path(__file__).parent / "workers" / "python_worker.py"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed: the TypeScript SDK's tests need Node.js 20+ and npm"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def npm(*args: str, timeout: float = 300) -> None:
    """Run npm in the package; fail the test with its output when it fails."""
    result = subprocess.run(
        [_tool("npm"), *args], cwd=PACKAGE, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"npm {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


@pytest.fixture(scope="session")
def node() -> str:
    """The node executable, after building the package and its test workers."""
    path = _tool("node")
    if not (PACKAGE / "node_modules").is_dir():
        npm("ci", "--ignore-scripts")
    npm("run", "build:test", timeout=120)
    return path


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    with sqlite_engine(tmp_path) as process:
        yield process


@pytest.fixture
def client(engine: EngineProcess) -> Iterator[Client]:
    with Client(address=engine.address) as connected:
        yield connected


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.jsonl"
    path.touch()
    return path


def read_ledger(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class WorkerProcess:
    """One worker as an OS process: `node ledger-worker.js` or `python python_worker.py`."""

    command: list[str]
    address: str
    ledger: Path
    log_path: Path
    task_queue: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> WorkerProcess:
        env = {
            **os.environ,
            "CEREBELUM_ADDRESS": self.address,
            "LEDGER": str(self.ledger),
            "TASK_QUEUE": self.task_queue,
            "PYTHONUNBUFFERED": "1",
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM, then the exit status (SIGKILL and fail if it does not exit in time)."""
        assert self.process is not None
        self.process.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the worker did not exit within {timeout} s of SIGTERM") from None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Workers:
    """Starts TypeScript and Python workers on demand and stops them all at the end."""

    node: str
    address: str
    ledger: Path
    log_dir: Path
    started: list[WorkerProcess] = field(default_factory=list)

    def typescript(self, task_queue: str = "test") -> WorkerProcess:
        return self._start([self.node, str(TS_WORKER)], task_queue, "ts")

    def python(self, task_queue: str = "test") -> WorkerProcess:
        return self._start([sys.executable, str(PY_WORKER)], task_queue, "py")

    def _start(self, command: list[str], task_queue: str, kind: str) -> WorkerProcess:
        log_path = self.log_dir / f"worker-{len(self.started)}-{kind}.log"
        worker = WorkerProcess(command, self.address, self.ledger, log_path, task_queue).start()
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


@pytest.fixture
def workers(node: str, engine: EngineProcess, ledger: Path, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(node=node, address=engine.address, ledger=ledger, log_dir=tmp_path)
    yield pool
    pool.stop_all()


def wait_for_phase(client: Client, execution_id: str, phase: str, *, timeout: float = 30) -> Execution:
    """The execution as first seen in `phase`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = client.get(execution_id)
        if execution.phase == phase:
            return execution
        time.sleep(0.05)
    raise AssertionError(f"{execution_id} did not reach {phase} within {timeout} s: {client.get(execution_id)}")


def event_types(client: Client, execution_id: str) -> list[str]:
    return [event.type for event in client.history(execution_id)]
