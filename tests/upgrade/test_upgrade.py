"""A Helm upgrade from the previous release, and a rollback, on a real API server (issue 19).

The previous release (tests/upgrade/previous-release.tar.xz, `git archive` of a pinned revision:
scripts/snapshot_release.py) is installed as its chart installs it: its CRDs, its ServiceAccount
and RBAC, its operator, as a process on a store. Executions are left sleeping, waiting for an
approval and waiting for their retry; the current chart and operator replace them on the same
store, and every execution finishes. A rollback to the previous operator is then refused before
it serves anything, once the store holds events it cannot read.

The test runs an API server of its own: the previous CRDs must not meet the other tests' objects.
"""

from __future__ import annotations

import lzma
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cerebelum import Client
from tests.integration.conftest import WORKER_SCRIPT, read_ledger
from tests.support.control_plane import ControlPlane, ControlPlaneError, ensure_binaries
from tests.support.helm import KUBE_VERSION, helm
from tests.support.kube import OPERATOR_NAMESPACE, kubectl_json, service_account_kubeconfig, wait_for_jsonpath
from tests.support.processes import OperatorProcess, WorkerPool
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).with_name("previous-release.tar.xz")
NAMESPACE = "shop"


@dataclass
class PreviousOperator(OperatorProcess):
    """The previous release's `cerebelum operator`: its own code first on the path."""

    release: Path | None = None

    def environment(self) -> dict[str, str]:
        assert self.release is not None
        paths = [self.release / "operator", self.release / "worker-sdk" / "python" / "src"]
        return {**super().environment(), "PYTHONPATH": ":".join(str(p) for p in paths)}


@pytest.fixture
def previous_release(tmp_path: Path) -> Path:
    target = tmp_path / "previous"
    with tarfile.open(fileobj=lzma.open(SNAPSHOT)) as archive:
        archive.extractall(target, filter="data")
    return target


@pytest.fixture
def own_control_plane() -> Iterator[ControlPlane]:
    try:
        bin_dir = ensure_binaries()
    except ControlPlaneError as error:
        pytest.fail(f"no control plane binaries: {error}", pytrace=False)
    with ControlPlane(bin_dir) as started:
        yield started


def install_chart(control_plane: ControlPlane, root: Path) -> None:
    """What `helm install`/`upgrade` of the chart at ``root`` does here: its CRDs, ServiceAccount, RBAC
    and the admission policy that stamps an Approval's approver (no Deployment: the operator runs
    as a process)."""
    crds = control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(root / "crds"), "-o", "name")
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds.stdout.split())
    control_plane.kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
    manifests = helm(
        "template",
        "cerebelum",
        str(root / "charts" / "cerebelum"),
        "-n",
        OPERATOR_NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        "--show-only=templates/serviceaccount.yaml",
        "--show-only=templates/rbac.yaml",
        "--show-only=templates/approval-policy.yaml",
    ).stdout
    control_plane.kubectl("apply", "-n", OPERATOR_NAMESPACE, "-f", "-", input=manifests)


def documents(*items: dict[str, object]) -> str:
    return yaml.safe_dump_all(items)


def resource(kind: str, name: str, spec: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": "cerebelum.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def step_phase(control_plane: ControlPlane, name: str, step: str) -> str | None:
    found = kubectl_json(control_plane, "get", f"execution/{name}", "-n", NAMESPACE).get("status") or {}
    return next((s["phase"] for s in found.get("steps", []) if s["name"] == step), None)


def test_an_upgrade_finishes_what_the_previous_release_left_and_a_rollback_after_it_is_refused_at_start(
    previous_release: Path, own_control_plane: ControlPlane, tmp_path: Path
) -> None:
    plane = own_control_plane
    assert (previous_release / "REVISION").read_text().strip()
    install_chart(plane, previous_release)
    plane.kubectl("create", "namespace", NAMESPACE)
    ledger = tmp_path / "ledger.jsonl"
    ledger.touch()
    database = f"sqlite:///{tmp_path / 'operator.db'}"
    kubeconfig = service_account_kubeconfig(plane, tmp_path / "operator.kubeconfig")
    options = ("--namespace", NAMESPACE, "--status-interval", "0.5", "--auth", "none")
    old = PreviousOperator(
        database_url=database,
        log_path=tmp_path / "previous.log",
        kubeconfig=kubeconfig,
        extra_args=options,
        release=previous_release,
    )
    old.start()
    workers = WorkerPool(script=WORKER_SCRIPT, address=old.address, ledger=ledger, log_dir=tmp_path)
    workers.start()
    try:
        applied = plane.kubectl(
            "apply",
            "-n",
            NAMESPACE,
            "-f",
            "-",
            input=documents(
                resource(
                    "Workflow",
                    "sleepy",
                    {"taskQueue": "test", "timeline": ["nap", "a"], "steps": {"nap": {"timer": {"duration": "15s"}}}},
                ),
                resource(
                    "Workflow",
                    "gated",
                    {"taskQueue": "test", "timeline": ["ok", "a"], "steps": {"ok": {"approval": {"timeout": "1h"}}}},
                ),
                resource(
                    "Workflow",
                    "retried",
                    {
                        "taskQueue": "test",
                        "timeline": ["flaky", "a"],
                        "steps": {"flaky": {"retry": {"maxAttempts": 3, "initialInterval": "8s"}}},
                    },
                ),
                resource("Execution", "sleepy-1", {"workflow": "sleepy", "input": {}}),
                resource("Execution", "gated-1", {"workflow": "gated", "input": {}}),
                resource("Execution", "retried-1", {"workflow": "retried", "input": {}}),
            ),
        )
        assert applied.returncode == 0, applied.stderr
        for name, phase in (("sleepy-1", "Sleeping"), ("gated-1", "WaitingForApproval")):
            wait_for_jsonpath(plane, f"execution/{name}", NAMESPACE, "{.status.phase}", phase, timeout=60)
        wait_until(lambda: step_phase(plane, "retried-1", "flaky") == "Retrying", within=60, what="flaky retrying")
        old.stop()  # the upgrade replaces the operator: SIGTERM, as a rolling Deployment does

        install_chart(plane, ROOT)  # the current CRDs and RBAC over the previous ones
        new = OperatorProcess(
            database_url=database,
            log_path=tmp_path / "current.log",
            kubeconfig=kubeconfig,
            extra_args=options,
            port=old.port,  # the Service's port: the worker reconnects to it
        )
        new.start()
        try:
            plane.kubectl(
                "apply",
                "-n",
                NAMESPACE,
                "-f",
                "-",
                input=documents(resource("Approval", "ok", {"execution": "gated-1", "step": "ok"})),
            )
            for name in ("sleepy-1", "gated-1", "retried-1"):
                wait_for_jsonpath(plane, f"execution/{name}", NAMESPACE, "{.status.phase}", "Succeeded", timeout=90)
            ran = read_ledger(ledger)
            assert [e["attempt"] for e in ran if e["step"] == "flaky"] == [1, 2]
            assert sum(1 for e in ran if e["step"] == "a") == 3  # each execution's last step, once

            # Something only the current release writes: a pause (events of format 3).
            uid = kubectl_json(plane, "get", "execution/sleepy-1", "-n", NAMESPACE)["metadata"]["uid"]
            plane.kubectl(
                "apply",
                "-n",
                NAMESPACE,
                "-f",
                "-",
                input=documents(resource("Execution", "held-1", {"workflow": "gated", "input": {}})),
            )
            wait_for_jsonpath(plane, "execution/held-1", NAMESPACE, "{.status.phase}", "WaitingForApproval", timeout=60)
            held = kubectl_json(plane, "get", "execution/held-1", "-n", NAMESPACE)["metadata"]["uid"]
            with Client(address=new.address) as client:
                assert client.get(uid).phase == "Succeeded"
                assert client.pause(held, reason="before the rollback").phase == "Paused"
        finally:
            new.stop()

        rollback = PreviousOperator(
            database_url=database,
            log_path=tmp_path / "rollback.log",
            kubeconfig=kubeconfig,
            extra_args=options,
            release=previous_release,
        )
        rollback.launch()
        assert rollback.process is not None
        assert rollback.process.wait(timeout=60) != 0
        said = rollback.log_path.read_text()
        assert "events of format 3" in said and "this engine reads formats up to 2" in said, said[-2000:]
    finally:
        workers.stop_all()
        old.stop()
