"""The namespace boundary on a real kube-apiserver, tried as an attacker would.

A user allowed only Approvals and Executions in one namespace tries to reach another namespace's
objects through a reference that is a path; an Execution carries an input larger than the API
server lets an annotation be; an Approval claims an approver while no admission policy stamps it.
The operator runs as the chart's ServiceAccount, bound only to the chart's RBAC.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.control_plane import ControlPlane
from tests.support.kube import (
    apply_yaml,
    install_operator_rbac,
    kubectl_json,
    service_account_kubeconfig,
    wait_for_jsonpath,
)
from tests.support.processes import OperatorProcess
from tests.support.waiting import wait_until

from .operator_fixtures import StartWorker

pytestmark = pytest.mark.kube

API = "cerebelum.io/v1alpha1"
BINDING = "cerebelum-approval-approver"  # the chart's binding for the release "cerebelum"
KOPF_RECORD = "kopf.zalando.org/last-handled-configuration"


def document(kind: str, name: str, spec: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}


def apply(control_plane: ControlPlane, namespace: str, *documents: dict[str, object]) -> None:
    result = apply_yaml(control_plane, yaml.safe_dump_all(documents), namespace=namespace)
    assert result.returncode == 0, result.stderr


def user_of(control_plane: ControlPlane, namespace: str, name: str) -> str:
    """A token of a ServiceAccount that may create and read Approvals and Executions in `namespace` only."""
    control_plane.kubectl("create", "serviceaccount", name, "-n", namespace)
    resources = "--resource=approvals.cerebelum.io,executions.cerebelum.io"
    control_plane.kubectl("create", "role", f"{name}-role", "-n", namespace, "--verb=create,get", resources)
    account = f"--serviceaccount={namespace}:{name}"
    control_plane.kubectl("create", "rolebinding", name, "-n", namespace, f"--role={name}-role", account)
    return control_plane.kubectl("create", "token", name, "-n", namespace).stdout.strip()


def gated(control_plane: ControlPlane, namespace: str) -> None:
    """An execution `run1` whose first step waits for an approval of step `pay`."""
    apply(
        control_plane,
        namespace,
        document("Workflow", "payroll", {"taskQueue": "test", "timeline": ["pay"], "steps": {"pay": {"approval": {}}}}),
        document("Execution", "run1", {"workflow": "payroll", "input": {}}),
    )


def test_references_that_are_paths_into_another_namespace_are_refused_by_the_api_server(
    control_plane: ControlPlane, crds: list[str], namespace: str
) -> None:
    team_b = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", team_b)
    gated(control_plane, team_b)
    mallory = user_of(control_plane, namespace, "mallory")
    attacks = [
        (
            "spec.execution",
            document("Approval", "sneaky", {"execution": f"../../{team_b}/executions/run1", "step": "pay"}),
        ),
        ("spec.workflow", document("Execution", "sneaky", {"workflow": f"../../{team_b}/workflows/payroll"})),
        ("spec.workflow", document("Execution", "upper", {"workflow": "Payroll"})),
    ]

    for field, attack in attacks:
        created = control_plane.kubectl(
            "create", "-n", namespace, "-f", "-", input=json.dumps(attack), token=mallory, check=False
        )
        assert created.returncode != 0, f"{attack} was accepted"
        assert f"{field} in body should match" in created.stderr, created.stderr

    assert control_plane.kubectl("get", "approvals,executions", "-n", namespace, "-o", "name").stdout == ""


def test_an_input_over_the_annotation_limit_runs_and_the_operator_never_gets_a_422(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess, start_worker: StartWorker
) -> None:
    start_worker()
    apply(control_plane, namespace, document("Workflow", "bulky", {"taskQueue": "test", "timeline": ["s1"]}))
    big = document("Execution", "bulky-1", {"workflow": "bulky", "input": {"blob": "x" * 300 * 1024}})
    # Created, not applied: kubectl apply's own last-applied annotation could not hold it either.
    created = control_plane.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(big), check=False)
    assert created.returncode == 0, created.stderr

    wait_for_jsonpath(control_plane, "execution/bulky-1", namespace, "{.status.phase}", "Succeeded", timeout=60)

    log = operator.log_path.read_text()
    assert "422" not in log and "Unprocessable" not in log, log[-3000:]
    # kopf's record of an Execution stays in the operator's memory (bookkeeping.ExecutionsInMemory);
    # of other kinds it is an annotation of digests, small whatever the spec holds.
    metadata = kubectl_json(control_plane, "get", "execution/bulky-1", "-n", namespace)["metadata"]
    assert KOPF_RECORD not in metadata.get("annotations", {}), metadata
    metadata = kubectl_json(control_plane, "get", "workflow/bulky", "-n", namespace)["metadata"]
    record = metadata.get("annotations", {}).get(KOPF_RECORD, "")
    assert 0 < len(record) < 1024, f"kopf's record is {len(record)} characters"


def stamps_approvers(control_plane: ControlPlane, namespace: str, token: str, user: str) -> bool:
    """Whether the API server writes the requesting user into spec.approver (a server-side dry run)."""
    probe = document("Approval", "probe", {"execution": "run1", "step": "pay", "approver": "the-ceo"})
    result = control_plane.kubectl(
        *("create", "--dry-run=server", "-n", namespace, "-f", "-", "-o", "jsonpath={.spec.approver}"),
        input=json.dumps(probe),
        token=token,
        check=False,
    )
    return result.returncode == 0 and result.stdout == user


@pytest.fixture
def operator_without_approval_policy(
    control_plane: ControlPlane, crds: list[str], operator_rbac: None, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator, started while the chart's approval policy is unbound; the binding is restored after."""
    control_plane.kubectl("delete", "mutatingadmissionpolicybinding", BINDING)
    process = OperatorProcess(
        database_url=f"sqlite:///{tmp_path / 'operator.db'}",
        log_path=tmp_path / "operator.log",
        kubeconfig=service_account_kubeconfig(control_plane, tmp_path / "operator.kubeconfig"),
        extra_args=(
            *("--namespace", namespace, "--lease-name", f"operator-{namespace}", "--status-interval", "0.5"),
            *("--auth", "none"),
        ),
    )
    try:
        process.start()
        yield process
    finally:
        process.stop()
        print(f"--- operator log ---\n{process.log_path.read_text()[-4000:]}")
        install_operator_rbac(control_plane)
        control_plane.kubectl("create", "serviceaccount", "stamp-probe", "-n", namespace, check=False)
        control_plane.kubectl(
            *("create", "rolebinding", "stamp-probe", "-n", namespace, "--clusterrole=cluster-admin"),
            f"--serviceaccount={namespace}:stamp-probe",
            check=False,
        )
        token = control_plane.kubectl("create", "token", "stamp-probe", "-n", namespace).stdout.strip()
        user = f"system:serviceaccount:{namespace}:stamp-probe"
        wait_until(
            lambda: stamps_approvers(control_plane, namespace, token, user),
            within=60,
            what="the restored approval policy to stamp approvers again",
        )


def test_an_approval_is_refused_when_no_admission_policy_stamps_its_approver(
    control_plane: ControlPlane, namespace: str, operator_without_approval_policy: OperatorProcess
) -> None:
    operator = operator_without_approval_policy
    gated(control_plane, namespace)
    wait_for_jsonpath(control_plane, "execution/run1", namespace, "{.status.phase}", "WaitingForApproval", timeout=30)
    mallory = user_of(control_plane, namespace, "mallory")
    claim = document("Approval", "claimed", {"execution": "run1", "step": "pay", "approver": "the-ceo"})

    created = control_plane.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(claim), token=mallory)
    assert created.returncode == 0, created.stderr

    wait_for_jsonpath(control_plane, "approval/claimed", namespace, "{.status.phase}", "Refused", timeout=30)
    message = kubectl_json(control_plane, "get", "approval/claimed", "-n", namespace)["status"]["message"]
    assert message.startswith("the approver cannot be verified: "), message
    assert "approvalPolicy.enabled=true" in message and "--trust-claimed-approver" in message, message
    phase = control_plane.kubectl("get", "execution/run1", "-n", namespace, "-o", "jsonpath={.status.phase}")
    assert phase.stdout == "WaitingForApproval"
    uid = kubectl_json(control_plane, "get", "execution/run1", "-n", namespace)["metadata"]["uid"]
    assert not [e for e in operator.history(uid) if e["kind"] in ("ApprovalGranted", "ApprovalRejected")]
    assert "Approvals will be refused until this is fixed" in operator.log_path.read_text()
