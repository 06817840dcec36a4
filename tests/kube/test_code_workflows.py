"""Code workflows through the operator on a real kube-apiserver (issue 18).

A Workflow object names a code workflow's function and task queue; its Executions are created
with kubectl like any other, a worker process runs the workflow code and its steps, `kubectl`
shows the status, an Approval object approves the code's `wait_for_approval`, and a worker
SIGKILLed during a durable sleep is replaced by another that replays the history.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.control_plane import ControlPlane
from tests.support.processes import OperatorProcess, WorkerPool

from .test_operator import apply, execution, status, wait_phase

pytestmark = pytest.mark.kube

WORKER = Path(__file__).parents[1] / "integration" / "workers" / "provision_worker.py"


def code_workflow(name: str, function: str) -> dict[str, Any]:
    spec = {"taskQueue": "test", "code": {"function": function}}
    return {"apiVersion": "cerebelum.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name}, "spec": spec}


def approval(name: str, execution_name: str, step: str) -> dict[str, Any]:
    spec = {"execution": execution_name, "step": step, "decision": "Approve"}
    return {"apiVersion": "cerebelum.io/v1alpha1", "kind": "Approval", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def workers(operator: OperatorProcess, ledger: Path, tmp_path: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(script=WORKER, address=operator.address, ledger=ledger, log_dir=tmp_path)
    yield pool
    pool.stop_all()


def test_an_execution_of_a_code_workflow_created_with_kubectl_runs_its_code_across_a_worker_sigkill(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess, workers: WorkerPool
) -> None:
    first = workers.start()
    apply(
        control_plane,
        namespace,
        code_workflow("provision", "provision"),
        execution("prov-k", "provision", {"region": "nyc3", "poll": "2s"}),
    )
    wait_phase(control_plane, namespace, "prov-k", "Sleeping", timeout=90)

    first.kill()
    workers.start()
    wait_phase(control_plane, namespace, "prov-k", "WaitingForApproval", timeout=90)
    pending = status(control_plane, namespace, "execution/prov-k")["pendingApproval"]
    assert pending["step"] == "go_live"
    apply(control_plane, namespace, approval("go", "prov-k", "go_live"))
    wait_phase(control_plane, namespace, "prov-k", "Succeeded", timeout=90)

    final = status(control_plane, namespace, "execution/prov-k")
    assert final["output"]["ip"] == "10.0.0.7"
    assert final["output"]["hosts"] == ["a", "b", "c"]
    steps = {step["name"] for step in final["steps"]}
    assert {"create_server#1", "check_droplet#2", "go_live"} <= steps, steps
    assert final.get("workflowTaskError") is None
