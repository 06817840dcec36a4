"""Finished Execution objects leave the API server after their time-to-live (issue 19), on a real
kube-apiserver, through the real operator process bound to the chart's RBAC.

The API server runs no garbage collector here, so the Approvals and Signals that go with an
Execution are deleted by the operator itself. The histories stay in the store: the gRPC API
still answers for an execution whose object is gone.
"""

from __future__ import annotations

import pytest

from tests.support.control_plane import ControlPlane
from tests.support.kube import apply_yaml, kubectl_json, wait_for_jsonpath
from tests.support.processes import OperatorProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.kube

GATED = """
apiVersion: cerebelum.io/v1alpha1
kind: Workflow
metadata: {{name: {name}}}
spec:
  taskQueue: test
  timeline: [go]
  steps: {{go: {{approval: {{timeout: 1h}}}}}}
  {ttl}
---
apiVersion: cerebelum.io/v1alpha1
kind: Execution
metadata: {{name: {name}-1}}
spec: {{workflow: {name}, input: {{}}}}
"""

APPROVAL = """
apiVersion: cerebelum.io/v1alpha1
kind: Approval
metadata: {{name: {execution}-ok}}
spec: {{execution: {execution}, step: go}}
"""

SIGNAL = """
apiVersion: cerebelum.io/v1alpha1
kind: Signal
metadata: {{name: {execution}-ping}}
spec: {{execution: {execution}, name: ping}}
"""


def names(control_plane: ControlPlane, kind: str, namespace: str) -> set[str]:
    return {item["metadata"]["name"] for item in kubectl_json(control_plane, "get", kind, "-n", namespace)["items"]}


def apply(control_plane: ControlPlane, namespace: str, text: str) -> None:
    result = apply_yaml(control_plane, text, namespace=namespace)
    assert result.returncode == 0, result.stderr


def uid_of(control_plane: ControlPlane, namespace: str, name: str) -> str:
    return str(kubectl_json(control_plane, "get", f"execution/{name}", "-n", namespace)["metadata"]["uid"])


def test_a_finished_execution_leaves_the_api_server_with_its_approval_and_signal_after_its_workflows_ttl_and_its_history_stays(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply(control_plane, namespace, GATED.format(name="brief", ttl="ttlAfterFinished: 2s"))
    apply(control_plane, namespace, GATED.format(name="kept", ttl=""))
    for name in ("brief-1", "kept-1"):
        wait_for_jsonpath(
            control_plane, f"execution/{name}", namespace, "{.status.phase}", "WaitingForApproval", timeout=60
        )
    brief, kept = uid_of(control_plane, namespace, "brief-1"), uid_of(control_plane, namespace, "kept-1")
    apply(control_plane, namespace, SIGNAL.format(execution="brief-1"))
    apply(control_plane, namespace, APPROVAL.format(execution="brief-1") + "---" + APPROVAL.format(execution="kept-1"))
    wait_for_jsonpath(control_plane, "execution/kept-1", namespace, "{.status.phase}", "Succeeded", timeout=60)

    wait_until(
        lambda: "brief-1" not in names(control_plane, "executions", namespace),
        within=60,
        what="brief-1's object deleted 2 s after it finished",
    )
    assert names(control_plane, "approvals", namespace) == {"kept-1-ok"}, "brief-1's Approval goes with it"
    assert names(control_plane, "signals", namespace) == set(), "brief-1's Signal goes with it"
    # A Workflow that says nothing takes the operator's default, here the command's: for ever.
    assert names(control_plane, "executions", namespace) == {"kept-1"}
    # Deleting a finished object cancels nothing and removes nothing from the store.
    kinds = [event["kind"] for event in operator.history(brief)]
    assert kinds[-1] == "ExecutionSucceeded" and "ApprovalGranted" in kinds, kinds

    # The due time comes from the object's status, not from the memory of the process that saw it
    # finish: restarted with a default time-to-live, the operator deletes what it resumes.
    operator.stop()
    operator.extra_args = (*operator.extra_args, "--execution-ttl", "1s")
    operator.start()
    wait_until(
        lambda: not names(control_plane, "executions", namespace),
        within=60,
        what="kept-1's object deleted by the restarted operator's default time-to-live",
    )
    assert names(control_plane, "approvals", namespace) == set()
    assert operator.history(kept)[-1]["kind"] == "ExecutionSucceeded"
