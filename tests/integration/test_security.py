"""`cerebelum dev --token` and TLS, with the engine and the workers as real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebelum import Client, TlsSettings, UnauthenticatedError, UnavailableError
from tests.support.processes import WorkerPool, wait_until
from tests.support.security import CREDENTIAL_VARIABLES, GuardedEngine, self_signed_certificate

from .conftest import WORKER_SCRIPT

pytestmark = pytest.mark.slow

TOKEN = "dev-token-for-the-security-tests"
FLOW = {"taskQueue": "test", "timeline": ["a", "b"]}


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


@pytest.fixture
def tokened_engine(tmp_path: Path) -> Iterator[GuardedEngine]:
    engine = GuardedEngine(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        log_path=tmp_path / "engine.log",
        extra_args=("--token", TOKEN),
    )
    engine.start()
    yield engine
    engine.stop()


def test_a_client_without_the_token_is_refused_naming_the_missing_credentials(tokened_engine: GuardedEngine) -> None:
    with Client(tokened_engine.address) as client, pytest.raises(UnauthenticatedError, match="no credentials"):
        client.list_workflows()


def test_a_client_with_a_wrong_token_is_refused(tokened_engine: GuardedEngine) -> None:
    with (
        Client(tokened_engine.address, token="not-the-token-at-all") as client,
        pytest.raises(UnauthenticatedError, match="not valid"),
    ):
        client.list_workflows()


def test_a_worker_without_the_token_takes_no_task_and_one_with_it_finishes_the_execution(
    tokened_engine: GuardedEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    ledger.touch()
    pool = WorkerPool(script=WORKER_SCRIPT, address=tokened_engine.address, ledger=ledger, log_dir=tmp_path)
    try:
        stranger = pool.start()
        with Client(tokened_engine.address, token=TOKEN) as client:
            client.apply_workflow("guarded", FLOW)
            execution = client.start("guarded", {})
            wait_until(
                lambda: "UNAUTHENTICATED" in stranger.log_path.read_text(), timeout=30, what="the stranger's refusal"
            )
            assert "StepStarted" not in [event.type for event in client.history(execution.id)]
            assert ledger.read_text() == ""

            monkeypatch.setenv("CEREBELUM_TOKEN", TOKEN)
            pool.start()
            final = client.wait(execution.id, timeout=60)
        assert final.phase == "Succeeded", final.error
    finally:
        pool.stop_all()


def test_over_tls_a_worker_that_trusts_the_certificate_finishes_and_a_plaintext_client_is_turned_away(
    certificate: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    engine = GuardedEngine(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        log_path=tmp_path / "engine.log",
        extra_args=("--token", TOKEN, "--tls-cert", str(cert), "--tls-key", str(key)),
    )
    engine.start()
    ledger = tmp_path / "ledger.jsonl"
    ledger.touch()
    pool = WorkerPool(script=WORKER_SCRIPT, address=engine.address, ledger=ledger, log_dir=tmp_path)
    try:
        with Client(engine.address, token=TOKEN, timeout=3) as plaintext, pytest.raises(UnavailableError):
            plaintext.list_workflows()

        monkeypatch.setenv("CEREBELUM_TOKEN", TOKEN)
        monkeypatch.setenv("CEREBELUM_TLS_CA", str(cert))
        pool.start()
        with Client(engine.address, token=TOKEN, tls=TlsSettings(ca_file=str(cert))) as client:
            client.apply_workflow("encrypted", FLOW)
            execution = client.start("encrypted", {})
            final = client.wait(execution.id, timeout=60)
        assert final.phase == "Succeeded", final.error
        assert "TLS" in engine.log_path.read_text()
    finally:
        pool.stop_all()
        engine.stop()


def test_dev_refuses_a_token_too_short_to_be_a_secret(tmp_path: Path) -> None:
    engine = GuardedEngine(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        log_path=tmp_path / "engine.log",
        extra_args=("--token", "abc"),
    )
    engine.launch()
    assert engine.process is not None
    assert engine.process.wait(timeout=30) != 0
    assert "at least 16 characters" in engine.log_path.read_text()
