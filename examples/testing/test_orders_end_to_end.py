"""End to end: the order workflow on a real engine, `cerebelum dev` on a temporary SQLite file."""

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from orders import archive, charge, settle

from cerebelum import AsyncClient, Worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[str]:
    """The address of a new engine with its own database, stopped after the test."""
    address = f"127.0.0.1:{free_port()}"
    database = f"sqlite:///{tmp_path / 'engine.db'}"
    with subprocess.Popen(["cerebelum", "dev", "--address", address, "--db", database]) as process:
        try:
            with grpc.insecure_channel(address) as channel:
                grpc.channel_ready_future(channel).result(timeout=30)
            yield address
        finally:
            process.terminate()
            process.wait(timeout=30)


async def test_an_order_is_charged_settled_and_archived(engine: str) -> None:
    worker = Worker("orders", address=engine)
    for step in (charge, settle, archive):
        worker.step(step)
    running = asyncio.create_task(worker.run_async())
    try:
        async with AsyncClient(engine) as client:
            spec = {"taskQueue": "orders", "timeline": ["charge", "settle", "archive"]}
            await client.apply_workflow("orders", spec)
            execution = await client.start("orders", {"id": "o-1", "amount": 42})
            done = await client.wait(execution.id, timeout=60)
    finally:
        await worker.shutdown()
        await running

    assert done.phase == "Succeeded", done
    assert [(step.name, step.phase) for step in done.steps] == [
        ("charge", "Succeeded"),
        ("settle", "Succeeded"),
        ("archive", "Succeeded"),
    ]
    assert done.output == 3  # the last step's output
