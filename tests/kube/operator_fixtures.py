"""Fixtures for operator tests: a namespace each, an operator process bound to the RBAC, workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import WORKER_SCRIPT, ledger
from tests.support.control_plane import ControlPlane
from tests.support.kube import install_operator_rbac, service_account_kubeconfig
from tests.support.processes import OperatorProcess, WorkerPool, WorkerProcess

__all__ = ["StartWorker", "ledger", "operator", "operator_database_url", "operator_rbac", "start_worker"]

StartWorker = Callable[[], WorkerProcess]


@pytest.fixture(scope="session")
def operator_rbac(control_plane: ControlPlane) -> None:
    install_operator_rbac(control_plane)


@pytest.fixture
def operator_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite (the default), or PostgreSQL when a test parametrizes this fixture with "postgres"."""
    if getattr(request, "param", "sqlite") == "postgres":
        url: str = request.getfixturevalue("postgres_database_url")
        return url
    return f"sqlite:///{tmp_path / 'operator.db'}"


@pytest.fixture
def operator(
    control_plane: ControlPlane,
    crds: list[str],
    operator_rbac: None,
    namespace: str,
    operator_database_url: str,
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    """`cerebelum operator` watching `namespace`, as the operator's ServiceAccount."""
    process = OperatorProcess(
        database_url=operator_database_url,
        log_path=tmp_path / "operator.log",
        kubeconfig=service_account_kubeconfig(control_plane, tmp_path / "operator.kubeconfig"),
        extra_args=(
            *("--namespace", namespace, "--lease-name", f"operator-{namespace}", "--status-interval", "0.5"),
            *("--auth", "none"),
        ),
    )
    process.start()
    yield process
    process.stop()
    print(f"--- operator log ---\n{process.log_path.read_text()[-6000:]}")


@pytest.fixture
def start_worker(operator: OperatorProcess, ledger: Path, tmp_path: Path) -> Iterator[StartWorker]:
    pool = WorkerPool(script=WORKER_SCRIPT, address=operator.address, ledger=ledger, log_dir=tmp_path)
    yield pool.start
    pool.stop_all()
