"""Fixtures for tests against a real kube-apiserver (etcd + kube-apiserver, no kubelet or controllers).

See tests/support/control_plane.py for what such a control plane does and does not do.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.control_plane import ControlPlane, ControlPlaneError, ensure_binaries
from tests.support.kube import audit_args

from .operator_fixtures import ledger, operator, operator_database_url, operator_rbac, start_worker

__all__ = [
    "audit_log",
    "control_plane",
    "crds",
    "ledger",
    "namespace",
    "operator",
    "operator_database_url",
    "operator_rbac",
    "start_worker",
]

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"


def _unavailable(reason: str) -> NoReturn:
    """Skip locally; on CI a missing control plane is a failure, not a quiet skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def audit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit")


@pytest.fixture(scope="session")
def audit_log(audit_dir: Path) -> Path:
    """The API server's audit log: one JSON line per write, to count the operator's API writes."""
    return audit_dir / "audit.log"


@pytest.fixture(scope="session")
def control_plane(audit_dir: Path) -> Iterator[ControlPlane]:
    """One API server for the session (skipped without its binaries or kubectl; an error on CI)."""
    if shutil.which("kubectl") is None:
        _unavailable("kubectl is not on PATH")
    try:
        bin_dir = ensure_binaries()  # cached under ~/.cache/cerebelum; builds from source when missing
    except ControlPlaneError as e:
        _unavailable(f"no control plane binaries: {e}")
    with ControlPlane(bin_dir, extra_apiserver_args=audit_args(audit_dir)) as started:
        yield started


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane) -> list[str]:
    """The CRDs in crds/, applied and Established; their names."""
    applied = control_plane.kubectl("apply", "-f", str(CRDS), "-o", "name").stdout.split()
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *applied)
    return [name.split("/", 1)[1] for name in applied]


@pytest.fixture
def namespace(control_plane: ControlPlane) -> str:
    """A fresh namespace per test (left behind: with no controller-manager, deleting one never finishes)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    return name
