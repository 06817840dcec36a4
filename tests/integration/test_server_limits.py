"""The engine process's own defences (findings 9, 10 and 12 of issue 13), against real processes.

One engine per SQLite file; a damaged file refused at start and answered as permanent while
serving; sockets that never finish HTTP/2's opening, or sit idle, or come by the thousand, do not
take the descriptors real workers need.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TypedDict, Unpack

import pytest

from cerebelum import Client, ServerError
from cerebelum_operator.server import EngineServer, ServerConfig
from tests.support.processes import ROOT, EngineProcess, free_port
from tests.support.sqlite_damage import damage_table
from tests.support.waiting import wait_until

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # length 0, type SETTINGS, no flags, stream 0
FLOW = {"taskQueue": "test", "timeline": ["a"]}


class LowFileLimitEngine(EngineProcess):
    """`cerebelum dev` started with a soft open-file limit of 1,024, a common default."""

    def launch(self) -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        # util-linux's prlimit rather than a preexec_fn: no Python between fork and exec, where it
        # can abort the child once gRPC's threads run in the test process.
        soft_limit = ["prlimit", f"--nofile=1024:{'unlimited' if hard == resource.RLIM_INFINITY else hard}", "--"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*soft_limit, sys.executable, *self.command()],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        self.starts += 1


def run_dev(database_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """A second `cerebelum dev`; it must exit by itself (the timeout is the failure)."""
    return subprocess.run(
        [
            sys.executable,
            *("-m", "cerebelum_operator.cli", "dev"),
            *("--address", f"127.0.0.1:{free_port()}", "--db", database_url),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )


def open_sockets(port: int, count: int, payload: bytes) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(payload)
        sockets.append(sock)
    return sockets


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server closed the socket (EOF or reset); drains whatever it sent first."""
    sock.setblocking(False)  # not select(): the descriptors of a thousand sockets exceed its range
    while True:
        try:
            if not sock.recv(65536):
                return True
        except BlockingIOError:
            return False
        except OSError:
            return True


def test_a_second_cerebelum_dev_on_the_same_sqlite_file_exits_at_once_naming_the_file_and_the_holder(
    tmp_path: Path,
) -> None:
    path = tmp_path / "engine.db"
    first = EngineProcess(database_url=f"sqlite:///{path}", log_path=tmp_path / "first.log")
    first.start()
    try:
        assert first.process is not None
        second = run_dev(f"sqlite:///{path}", tmp_path)
        output = " ".join((second.stdout + second.stderr).split())  # the console wraps long lines
        assert second.returncode == 1, output
        assert str(path) in output
        assert f"pid {first.process.pid}" in output
        with Client(address=first.address) as client:  # the first is untouched
            client.apply_workflow("still-mine", FLOW)
        first.kill()  # SIGKILL: the kernel releases the lock, so a restart needs no cleanup
        first.start()
        with Client(address=first.address) as client:
            assert [w.name for w in client.list_workflows()] == ["still-mine"]
    finally:
        first.stop()


def test_a_cerebelum_dev_on_a_damaged_sqlite_file_refuses_to_start_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    engine = EngineProcess(database_url=f"sqlite:///{path}", log_path=tmp_path / "engine.log")
    engine.start()
    with Client(address=engine.address) as client:
        client.apply_workflow("flow", FLOW)
        client.start("flow", execution_id="run-1")
    engine.stop()
    damage_table(path, "executions")

    refused = run_dev(f"sqlite:///{path}", tmp_path)

    output = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode == 1, output
    assert f"{path} is corrupt" in output
    assert "Traceback" not in output


def test_damage_found_while_serving_is_answered_as_a_permanent_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    engine = EngineProcess(database_url=f"sqlite:///{path}", log_path=tmp_path / "engine.log")
    engine.start()
    try:
        with Client(address=engine.address) as client:
            client.apply_workflow("flow", FLOW)
            client.start("flow", execution_id="run-1")
            damage_table(path, "executions")
            with pytest.raises(ServerError) as refused:
                client.get("run-1")
        assert refused.value.code == "DataLoss"
        assert f"{path} is corrupt" in refused.value.message
        assert "retrying cannot help" in refused.value.message
    finally:
        engine.stop()


def test_a_thousand_sockets_sending_only_the_http2_preface_are_closed_by_the_handshake_timeout_while_a_real_client_works(
    tmp_path: Path,
) -> None:
    engine = LowFileLimitEngine(database_url=f"sqlite:///{tmp_path / 'engine.db'}", log_path=tmp_path / "engine.log")
    engine.start()
    sockets: list[socket.socket] = []
    try:
        assert engine.process is not None
        limits = Path(f"/proc/{engine.process.pid}/limits").read_text()
        (line,) = [line for line in limits.splitlines() if line.startswith("Max open files")]
        soft, hard = line.split()[3:5]
        assert soft == hard, f"the engine kept its soft open-file limit: {line}"

        sockets = open_sockets(engine.port, 1_100, PREFACE)  # more than the 1,024 it started with
        with Client(address=engine.address) as client:
            client.apply_workflow("during-the-flood", FLOW)  # descriptors are left for real callers
        started = time.monotonic()
        open_ones = list(sockets)

        def all_closed() -> bool:
            open_ones[:] = [sock for sock in open_ones if not closed_by_peer(sock)]
            return not open_ones

        wait_until(all_closed, within=30, interval=0.2, what="the server to close the preface-only sockets")
        # The handshake timeout (5 s) closed them, not a default of minutes.
        assert time.monotonic() - started < 20
        with Client(address=engine.address) as client:
            assert [w.name for w in client.list_workflows()] == ["during-the-flood"]
    finally:
        for sock in sockets:
            sock.close()
        engine.stop()


class Limits(TypedDict, total=False):
    """The `ServerConfig` limits a test sets (the rest keep their defaults)."""

    max_connections: int
    max_connection_idle_ms: int


async def serving(tmp_path: Path, **limits: Unpack[Limits]) -> EngineServer:
    config = ServerConfig(
        address="127.0.0.1:0",
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        max_poll_wait_ms=200,
        **limits,
    )
    server = EngineServer(config)
    await server.start()
    return server


async def test_an_idle_http2_connection_is_closed_after_the_idle_limit(tmp_path: Path) -> None:
    server = await serving(tmp_path, max_connection_idle_ms=1_000)
    try:
        sockets = await asyncio.to_thread(open_sockets, server.port, 20, PREFACE + EMPTY_SETTINGS)
        open_ones = list(sockets)

        def all_closed() -> bool:
            open_ones[:] = [sock for sock in open_ones if not closed_by_peer(sock)]
            return not open_ones

        await asyncio.to_thread(wait_until, all_closed, within=15, interval=0.1, what="idle connections closed")
        for sock in sockets:
            sock.close()
    finally:
        await server.stop(0)


async def test_connections_over_the_cap_are_closed_at_once_and_the_server_keeps_serving(tmp_path: Path) -> None:
    server = await serving(tmp_path, max_connections=20)
    try:
        sockets = await asyncio.to_thread(open_sockets, server.port, 60, PREFACE + EMPTY_SETTINGS)
        refused: list[socket.socket] = []

        def forty_refused() -> bool:
            refused.extend(sock for sock in sockets if sock not in refused and closed_by_peer(sock))
            return len(refused) >= 40

        await asyncio.to_thread(wait_until, forty_refused, within=3, what="connections over the cap refused")
        for sock in sockets:
            sock.close()

        def a_client_works() -> bool:
            with Client(address=f"127.0.0.1:{server.port}") as client:
                client.apply_workflow("after", FLOW)
            return True

        assert await asyncio.to_thread(a_client_works)
    finally:
        await server.stop(0)


def test_an_idle_limit_that_would_cut_long_polls_is_refused() -> None:
    with pytest.raises(ValueError, match=r"max_connection_idle_ms \(30000\) must exceed max_poll_wait_ms \(30000\)"):
        ServerConfig(max_connection_idle_ms=30_000)
