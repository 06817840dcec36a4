"""The Kubernetes guide's quick start, run as written: the provision example through the operator."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.control_plane import ControlPlane
from tests.support.kube import kubectl_json, wait_for_jsonpath
from tests.support.processes import OperatorProcess, WorkerProcess

pytestmark = pytest.mark.kube

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "provision"


def test_the_provision_example_runs_through_the_operator_as_the_kubernetes_guide_shows(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess, ledger: Path, tmp_path: Path
) -> None:
    worker = WorkerProcess(
        script=EXAMPLE / "worker.py", address=operator.address, ledger=ledger, log_path=tmp_path / "worker.log"
    ).start()
    try:
        control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE / "workflow.yaml"))
        control_plane.kubectl("create", "-n", namespace, "-f", str(EXAMPLE / "execution.yaml"))
        wait_for_jsonpath(
            control_plane, "execution/provision-eu-1", namespace, "{.status.phase}", "WaitingForApproval", timeout=60
        )
        control_plane.kubectl("create", "-n", namespace, "-f", str(EXAMPLE / "approval.yaml"))
        wait_for_jsonpath(
            control_plane, "execution/provision-eu-1", namespace, "{.status.phase}", "Succeeded", timeout=60
        )
    finally:
        worker.stop()

    execution = kubectl_json(control_plane, "get", "execution/provision-eu-1", "-n", namespace)
    approver = kubectl_json(control_plane, "get", "approval/provision-eu-1-go-live", "-n", namespace)["spec"][
        "approver"
    ]
    assert approver, "the admission policy stamps the approver"
    assert execution["status"]["output"]["approvedBy"] == approver
    history = operator.history(execution["metadata"]["uid"])
    kinds = [event["kind"] for event in history]
    for kind in ("StepFailed", "StepRetryAfter", "ApprovalGranted", "SleepStarted", "ExecutionSucceeded"):
        assert kind in kinds, f"{kind} missing from {kinds}"
