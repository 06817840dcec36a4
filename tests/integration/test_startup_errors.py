"""What a user sees when the engine cannot listen, or when a client and the engine disagree on TLS.

Real processes: `cerebelum dev` and the `cerebelum` CLI, as a user runs them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebelum_operator.server import EngineServer, ServerConfig, TlsFiles
from tests.support.security import CREDENTIAL_VARIABLES, GuardedEngine, self_signed_certificate

ROOT = Path(__file__).resolve().parents[2]


def _one_line(text: str) -> str:
    """The CLI's console wraps long lines; what the user reads is the words."""
    return " ".join(text.split())


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "cerebelum_operator.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**clean, **env},
        timeout=60,
    )


def test_cerebelum_dev_on_a_port_in_use_exits_with_one_line_naming_the_address_and_the_option(
    tmp_path: Path, taken_port: int
) -> None:
    address = f"127.0.0.1:{taken_port}"
    out = _cli("dev", "--address", address, "--db", f"sqlite:///{tmp_path / 'engine.db'}")
    assert out.returncode == 1
    assert _one_line(out.stderr).endswith(  # after the engine's own log lines
        f"error: cannot listen on {address}: address already in use; stop what holds it or choose another"
        " with --address HOST:PORT"
    )
    assert "Traceback" not in out.stdout + out.stderr


def test_cerebelum_dev_on_a_store_a_newer_release_changed_past_what_it_reads_exits_saying_what_to_do(
    tmp_path: Path,
) -> None:
    from sqlalchemy import create_engine, update

    from cerebelum_operator.store import open_store
    from cerebelum_operator.store.schema import store_compatibility

    url = f"sqlite:///{tmp_path / 'engine.db'}"
    store = open_store(url)
    store.migrate()
    store.close()
    engine = create_engine(url)  # what a newer release left: histories with events of a newer format
    with engine.begin() as conn:
        conn.execute(update(store_compatibility).where(store_compatibility.c.name == "events").values(version=99))
    engine.dispose()

    out = _cli("dev", "--address", "127.0.0.1:0", "--db", url)

    assert out.returncode == 1
    assert "store's histories hold events of format 99, written by a newer release" in _one_line(out.stderr)
    assert "restore a backup taken before the upgrade" in _one_line(out.stderr)
    assert "Traceback" not in out.stdout + out.stderr


async def test_the_engine_server_with_tls_on_a_port_in_use_raises_a_clear_error_and_releases_the_store(
    tmp_path: Path, taken_port: int
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    database_url = f"sqlite:///{tmp_path / 'engine.db'}"
    tls = TlsFiles(certificate=cert, private_key=key)
    server = EngineServer(ServerConfig(address=f"127.0.0.1:{taken_port}", database_url=database_url, tls=tls))
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{taken_port}: address already in use"):
        await server.start()
    # The store is released: another engine can claim the same file at once.
    again = EngineServer(ServerConfig(address="127.0.0.1:0", database_url=database_url))
    await again.start()
    await again.stop(grace_s=0)


@pytest.fixture(scope="module")
def tls_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GuardedEngine, Path]]:
    directory = tmp_path_factory.mktemp("tls-engine")
    cert, key = self_signed_certificate(directory)
    engine = GuardedEngine(
        database_url=f"sqlite:///{directory / 'engine.db'}",
        log_path=directory / "engine.log",
        extra_args=("--tls-cert", str(cert), "--tls-key", str(key)),
    )
    engine.start()
    yield engine, cert
    engine.stop()


def test_a_plaintext_cli_at_a_tls_engine_is_told_the_engine_may_require_tls(
    tls_engine: tuple[GuardedEngine, Path],
) -> None:
    engine, _ = tls_engine
    out = _cli("get", "executions", "--address", engine.address)
    assert out.returncode == 1
    message = _one_line(out.stderr)
    assert message.startswith("error: Unavailable:")
    assert "the engine may require TLS: set CEREBELUM_TLS=1, and CEREBELUM_TLS_CA" in message


def test_a_tls_cli_that_does_not_trust_the_engine_s_certificate_is_told_to_set_the_ca(
    tls_engine: tuple[GuardedEngine, Path],
) -> None:
    engine, cert = tls_engine
    untrusted = _one_line(_cli("get", "executions", "--address", engine.address, CEREBELUM_TLS="1").stderr)
    assert "the engine's certificate is not trusted: set CEREBELUM_TLS_CA" in untrusted
    trusted = _cli("get", "executions", "--address", engine.address, CEREBELUM_TLS_CA=str(cert))
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr


def test_a_tls_cli_at_a_plaintext_engine_is_told_the_engine_may_not_serve_tls(tmp_path: Path) -> None:
    cert, _ = self_signed_certificate(tmp_path)
    engine = GuardedEngine(database_url=f"sqlite:///{tmp_path / 'engine.db'}", log_path=tmp_path / "engine.log")
    engine.start()
    try:
        out = _cli("get", "executions", "--address", engine.address, CEREBELUM_TLS_CA=str(cert))
    finally:
        engine.stop()
    assert out.returncode == 1
    assert "the engine may not serve TLS: unset CEREBELUM_TLS and CEREBELUM_TLS_CA" in _one_line(out.stderr)


def test_a_cli_at_a_closed_port_gets_no_tls_hint() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    out = _cli("get", "executions", "--address", f"127.0.0.1:{closed}")
    assert out.returncode == 1
    assert "Connection refused" in out.stderr
    assert "TLS" not in out.stderr
