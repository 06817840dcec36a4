"""Start `cerebelum dev` and no-op worker processes for a benchmark, and stop them after."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.support.processes import free_port  # noqa: E402

__all__ = ["running_engine"]


@contextlib.contextmanager
def running_engine(*, db: str | None, workers: int) -> Iterator[tuple[str, str]]:
    """Yield (address, store URL) of a dev engine (a temp SQLite file unless `db`) with `workers` running."""
    store = db or f"sqlite:///{Path(tempfile.mkdtemp(prefix='cerebelum-bench-')) / 'bench.db'}"
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "CEREBELUM_ADDRESS": address}
    dev = [sys.executable, "-m", "cerebelum_operator.cli", "dev", "--address", address, "--db", store]
    processes = [subprocess.Popen([*dev, "--log-level", "warning"])]
    processes += [subprocess.Popen([sys.executable, str(HERE / "noop_worker.py")], env=env) for _ in range(workers)]
    try:
        grpc.channel_ready_future(grpc.insecure_channel(address)).result(timeout=30)
        yield address, store
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=15)
