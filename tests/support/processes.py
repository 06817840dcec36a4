"""Real processes for integration tests: the engine (`cerebelum dev`) and workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

__all__ = ["EngineProcess", "WorkerProcess", "free_port", "sqlite_engine"]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EngineProcess:
    """`cerebelum dev` as a child process; SIGKILL and restart it on the same store and port."""

    database_url: str
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    extra_args: tuple[str, ...] = ()  # more `cerebelum dev` options (--retention 1s, say)
    ui_port: int | None = None  # serve the web UI there too (--ui-address); ready once /healthz answers

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        """The web UI's base URL (no trailing slash)."""
        if self.ui_port is None:
            raise AttributeError("this engine serves no UI: give it a ui_port")
        return f"http://127.0.0.1:{self.ui_port}"

    def command(self) -> list[str]:
        # No UI unless asked: engines of a test run would contend for the default port.
        ui = ("--ui-address", f"127.0.0.1:{self.ui_port}" if self.ui_port is not None else "off")
        return [
            *("-m", "cerebelum_operator.cli", "dev"),
            *("--address", self.address, "--db", self.database_url, "--log-level", "info"),
            *ui,
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self) -> None:
        self.launch()
        self.wait_ready(timeout=30)

    def launch(self) -> None:
        """Spawn the process without waiting for it to serve."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, *self.command()],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=self.environment(),
            )
        self.starts += 1

    def serving(self, timeout: float) -> bool:
        channel = grpc.insecure_channel(self.address)
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return False
        finally:
            channel.close()
        return True

    def ui_serving(self, timeout: float) -> bool:
        """Whether GET /healthz on the UI port answers 200 within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.ui_url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return True
            except OSError:  # refused while starting; URLError and HTTPError are OSErrors
                pass
            if time.monotonic() > deadline or (self.process is not None and self.process.poll() is not None):
                return False
            time.sleep(0.05)

    def wait_ready(self, *, timeout: float) -> None:
        began = time.monotonic()
        if not self.serving(timeout):
            raise AssertionError(f"engine did not start; log:\n{self.log_path.read_text()[-3000:]}")
        if self.ui_port is not None and not self.ui_serving(max(1.0, timeout - (time.monotonic() - began))):
            raise AssertionError(
                f"the engine's UI did not answer GET {self.ui_url}/healthz; log:\n{self.log_path.read_text()[-3000:]}"
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def run_cli(engine: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`cerebelum ARGS --address <engine>`, as a user runs it; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "cerebelum_operator.cli", *args, "--address", engine.address],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@contextmanager
def sqlite_engine(directory: Path) -> Iterator[EngineProcess]:
    """A `cerebelum dev` serving a new SQLite file in `directory`, stopped on leaving."""
    process = EngineProcess(database_url=f"sqlite:///{directory / 'engine.db'}", log_path=directory / "engine.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@dataclass
class OperatorProcess(EngineProcess):
    """`cerebelum operator` as a child process, talking to the API server through `kubeconfig`."""

    kubeconfig: Path | None = None
    identity: str = "operator-under-test"
    lease_namespace: str = "cerebelum-system"
    extra_args: tuple[str, ...] = ()

    def command(self) -> list[str]:
        return [
            *("-m", "cerebelum_operator.cli", "operator"),
            *("--address", self.address, "--db", self.database_url, "--log-level", "info"),
            *("--identity", self.identity, "--lease-namespace", self.lease_namespace, "--lease-duration", "6"),
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        assert self.kubeconfig is not None, "an operator needs a kubeconfig"
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}

    def history(self, execution_id: str) -> list[dict[str, Any]]:
        """The full history from the engine's store, over the operator's own gRPC endpoint."""
        from cerebelum import Client

        with Client(address=self.address) as client:
            return [{"seq": e.seq, "kind": e.type, "data": e.data} for e in client.history(execution_id)]


@dataclass
class WorkerProcess:
    script: Path
    address: str
    ledger: Path
    log_path: Path
    task_queue: str = "test"
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> WorkerProcess:
        env = {
            **os.environ,
            "CEREBELUM_ADDRESS": self.address,
            "LEDGER": str(self.ledger),
            "TASK_QUEUE": self.task_queue,
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(self.script)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass
class WorkerPool:
    """Starts worker processes on demand, each with its own log, and stops them all at the end."""

    script: Path
    address: str
    ledger: Path
    log_dir: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start(self, **env: str) -> WorkerProcess:
        """A new worker process; ``env`` is added to its environment (CODE_VERSION="2", say)."""
        worker = WorkerProcess(
            script=self.script,
            address=self.address,
            ledger=self.ledger,
            log_path=self.log_dir / f"worker-{len(self.workers)}.log",
            extra_env=env,
        ).start()
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()
