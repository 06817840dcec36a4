"""A TypeScript worker against `cerebelum dev --token` and over TLS, as real processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cerebelum import Client, TlsSettings
from tests.support.security import CREDENTIAL_VARIABLES, GuardedEngine, self_signed_certificate
from tests.support.waiting import wait_until

from .conftest import Workers, read_ledger

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TOKEN = "dev-token-for-the-typescript-tests"
MakeWorkers = Callable[[str], Workers]
FLOW = {"taskQueue": "secure", "timeline": ["nap", "after"]}


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


def guarded_engine(tmp_path: Path, *extra_args: str) -> Iterator[GuardedEngine]:
    engine = GuardedEngine(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}", log_path=tmp_path / "engine.log", extra_args=extra_args
    )
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture
def tokened_engine(tmp_path: Path) -> Iterator[GuardedEngine]:
    yield from guarded_engine(tmp_path, "--token", TOKEN)


@pytest.fixture
def tls_engine(tmp_path: Path, certificate: tuple[Path, Path]) -> Iterator[GuardedEngine]:
    cert, key = certificate
    yield from guarded_engine(tmp_path, "--token", TOKEN, "--tls-cert", str(cert), "--tls-key", str(key))


@pytest.fixture
def pool(node: str, tmp_path: Path) -> Iterator[MakeWorkers]:
    started: list[Workers] = []

    def make(address: str) -> Workers:
        ledger = tmp_path / "ledger.jsonl"
        ledger.touch()
        workers = Workers(node=node, address=address, ledger=ledger, log_dir=tmp_path)
        started.append(workers)
        return workers

    yield make
    for workers in started:
        workers.stop_all()


def test_a_typescript_worker_without_the_token_takes_no_task_and_one_with_the_token_file_finishes(
    tokened_engine: GuardedEngine, pool: MakeWorkers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers = pool(tokened_engine.address)
    stranger = workers.typescript("secure")
    with Client(tokened_engine.address, token=TOKEN) as client:
        client.apply_workflow("guarded", FLOW)
        execution = client.start("guarded", {"sleep_ms": 10})
        wait_until(lambda: "UNAUTHENTICATED" in stranger.log(), within=30, what="the stranger's refusal")
        assert "StepStarted" not in [event.type for event in client.history(execution.id)]
        assert read_ledger(workers.ledger) == []
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        monkeypatch.setenv("CEREBELUM_TOKEN_FILE", str(token_file))
        workers.typescript("secure")
        final = client.wait(execution.id, timeout=60)
    assert final.phase == "Succeeded", final.error
    assert stranger.log().count("cannot poll secure") == 1, "one log line for the whole refusal"


def test_over_tls_a_typescript_worker_that_trusts_the_certificate_finishes_the_execution(
    tls_engine: GuardedEngine, certificate: tuple[Path, Path], pool: MakeWorkers, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, _ = certificate
    monkeypatch.setenv("CEREBELUM_TOKEN", TOKEN)
    monkeypatch.setenv("CEREBELUM_TLS_CA", str(cert))
    pool(tls_engine.address).typescript("secure")
    with Client(tls_engine.address, token=TOKEN, tls=TlsSettings(ca_file=str(cert))) as client:
        client.apply_workflow("encrypted", FLOW)
        execution = client.start("encrypted", {"sleep_ms": 10})
        final = client.wait(execution.id, timeout=60)
    assert final.phase == "Succeeded", final.error
    assert final.output == {"after": {"nap": {"napped": True}}}
