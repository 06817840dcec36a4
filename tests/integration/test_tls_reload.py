"""A renewed certificate is served on new connections without restarting the engine.

cert-manager renews the Secret before expiry and the kubelet swaps the mounted files; the engine
(in-process here, a real grpc.aio server) must serve the new pair from the next handshake on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest

from cerebelum.v1 import workflow_pb2
from cerebelum.v1.workflow_pb2_grpc import WorkflowServiceStub
from cerebelum_operator.server import EngineServer, ServerConfig, TlsFiles
from tests.support.security import self_signed_certificate
from tests.support.waiting import wait_until


def certificate(directory: Path) -> tuple[Path, Path]:
    """A new self-signed certificate (its own CA and key) for localhost."""
    directory.mkdir()
    return self_signed_certificate(directory)


def renew(source: tuple[Path, Path], live: tuple[Path, Path]) -> None:
    """Like a renewal: each file written beside its live name, then moved over it."""
    for new, current in zip(source, live, strict=True):
        staged = current.with_name(f".{current.name}.tmp")
        shutil.copyfile(new, staged)
        os.replace(staged, current)


def serving_a_of_two(tmp_path: Path) -> tuple[tuple[Path, Path], tuple[Path, Path], tuple[Path, Path]]:
    """Two certificates, a and b, and the live files an engine serves, holding a for now."""
    a, b = certificate(tmp_path / "a"), certificate(tmp_path / "b")
    live_dir = tmp_path / "live"
    live_dir.mkdir()
    live = (live_dir / "tls.crt", live_dir / "tls.key")
    renew(a, live)
    return a, b, live


def answer(port: int, trusted_ca: Path) -> grpc.StatusCode:
    """The status of one call on a new connection that trusts only `trusted_ca`."""
    credentials = grpc.ssl_channel_credentials(root_certificates=trusted_ca.read_bytes())
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        try:
            stub = WorkflowServiceStub(channel)  # type: ignore[no-untyped-call]
            stub.ListWorkflows(workflow_pb2.ListWorkflowsRequest(), timeout=5)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def served_to(port: int, trusted_ca: Path, *, what: str) -> None:
    """Wait until a new client trusting only `trusted_ca` is answered."""
    await asyncio.to_thread(
        wait_until, lambda: answer(port, trusted_ca) == grpc.StatusCode.OK, within=30, interval=0.1, what=what
    )


async def serving(tmp_path: Path, tls: TlsFiles) -> EngineServer:
    config = ServerConfig(address="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'engine.db'}", tls=tls)
    server = EngineServer(config)
    await server.start()
    return server


async def test_a_renewed_certificate_is_served_to_new_connections_and_the_old_one_no_longer(tmp_path: Path) -> None:
    a, b, live = serving_a_of_two(tmp_path)
    server = await serving(tmp_path, TlsFiles(certificate=live[0], private_key=live[1]))
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=a[0].read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{server.port}", credentials) as before:
            stub = WorkflowServiceStub(before)  # type: ignore[no-untyped-call]
            await stub.ListWorkflows(workflow_pb2.ListWorkflowsRequest(), timeout=5)
            assert await asyncio.to_thread(answer, server.port, b[0]) == grpc.StatusCode.UNAVAILABLE

            renew(b, live)

            await served_to(server.port, b[0], what="a client trusting only the renewed certificate to be served")
            assert await asyncio.to_thread(answer, server.port, a[0]) == grpc.StatusCode.UNAVAILABLE
            # The connection opened before the renewal is not dropped.
            await stub.ListWorkflows(workflow_pb2.ListWorkflowsRequest(), timeout=5)
    finally:
        await server.stop(0)


async def test_a_half_renewed_pair_keeps_the_previous_certificate_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, live = serving_a_of_two(tmp_path)
    server = await serving(tmp_path, TlsFiles(certificate=live[0], private_key=live[1]))
    try:
        caplog.set_level(logging.WARNING, logger="cerebelum_operator.server.tls")
        renew((b[0], live[1]), live)  # the certificate is new, its key not yet
        for _ in range(3):
            assert await asyncio.to_thread(answer, server.port, a[0]) == grpc.StatusCode.OK
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "not usable" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
        assert "KEY_VALUES_MISMATCH" in warnings[0].getMessage() or "key" in warnings[0].getMessage().lower()

        renew(b, live)
        await served_to(server.port, b[0], what="the completed pair to be served")
    finally:
        await server.stop(0)


async def test_a_kubelet_style_symlink_swap_is_followed(tmp_path: Path) -> None:
    """A Secret volume: tls.crt -> ..data/tls.crt, and ..data -> a dated directory swapped at once."""
    a, b = certificate(tmp_path / "a"), certificate(tmp_path / "b")
    volume = tmp_path / "volume"
    volume.mkdir()

    def publish(version: str, pair: tuple[Path, Path]) -> None:
        dated = volume / version
        dated.mkdir()
        shutil.copyfile(pair[0], dated / "tls.crt")
        shutil.copyfile(pair[1], dated / "tls.key")
        (volume / "..data_tmp").symlink_to(version)
        os.replace(volume / "..data_tmp", volume / "..data")

    publish("..2024_01_01", a)
    for name in ("tls.crt", "tls.key"):
        (volume / name).symlink_to(f"..data/{name}")
    server = await serving(tmp_path, TlsFiles(certificate=volume / "tls.crt", private_key=volume / "tls.key"))
    try:
        assert await asyncio.to_thread(answer, server.port, a[0]) == grpc.StatusCode.OK
        publish("..2024_02_01", b)
        shutil.rmtree(volume / "..2024_01_01")
        await served_to(server.port, b[0], what="the swapped certificate to be served")
        assert await asyncio.to_thread(answer, server.port, a[0]) == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


def https_answer(port: int, trusted_ca: Path) -> bool:
    """Whether a new HTTPS connection to the web UI, trusting only `trusted_ca`, is answered."""
    context = ssl.create_default_context(cafile=str(trusted_ca))
    try:
        with urllib.request.urlopen(f"https://localhost:{port}/healthz", context=context, timeout=5) as response:
            return bool(response.status == 200)
    except urllib.error.URLError as error:
        if isinstance(error.reason, ssl.SSLCertVerificationError):
            return False
        raise


async def test_the_web_ui_serves_a_renewed_certificate_and_keeps_the_previous_one_while_half_renewed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, live = serving_a_of_two(tmp_path)
    config = ServerConfig(
        address="127.0.0.1:0",
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        tls=TlsFiles(certificate=live[0], private_key=live[1]),
        ui_address="127.0.0.1:0",
    )
    server = EngineServer(config)
    await server.start()
    try:
        port = server.ui_port
        assert port and await asyncio.to_thread(https_answer, port, a[0])
        assert not await asyncio.to_thread(https_answer, port, b[0])

        caplog.set_level(logging.WARNING, logger="cerebelum_operator.server.tls")
        renew((b[0], live[1]), live)  # the certificate is new, its key not yet
        for _ in range(3):
            assert await asyncio.to_thread(https_answer, port, a[0])
        assert len([r for r in caplog.records if "not usable" in r.getMessage()]) == 1

        renew(b, live)
        assert await asyncio.to_thread(https_answer, port, b[0])
        assert not await asyncio.to_thread(https_answer, port, a[0])
    finally:
        await server.stop(0)
