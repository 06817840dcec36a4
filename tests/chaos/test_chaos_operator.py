"""Chaos in operator mode: the operator process (what runs in the operator pod) SIGKILLed at random.

`cerebelum operator` runs against the real test kube-apiserver with the Helm chart's RBAC.
Executions are Execution objects, approvals and rejections are Approval objects, a cancellation
deletes the Execution. A hundred executions with 8 operator kills and 4 worker kills: fewer than
the dev-mode runs, because each restart waits for kopf to list and resume every object, and
kubectl itself costs CPU on this two-core machine. An operator that exits on its own after
losing its Lease (status 75, by design) is started again, as its pod's kubelet would. Besides the history and ledger checks of every chaos
run, the Kubernetes side must agree: each Execution shows the phase the store has, a cancelled
one is gone, every Approval is Applied.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.control_plane import ControlPlane

from .driver import ChaosPlan, ChaosReport, ChaosRun, seed_from_environment
from .operator_backend import OperatorBackend

pytestmark = [pytest.mark.slow, pytest.mark.kube, pytest.mark.chaos, pytest.mark.timeout(900)]


def test_a_hundred_executions_reach_their_fates_and_their_objects_show_it_while_the_operator_is_killed(
    control_plane: ControlPlane,
    crds: list[str],
    operator_rbac: None,
    namespace: str,
    tmp_path: Path,
    chaos_reports: list[ChaosReport],
) -> None:
    plan = ChaosPlan(seed=seed_from_environment(), executions=100, engine_kills=8, worker_kills=4, start_window_s=40)
    backend = OperatorBackend(control_plane=control_plane, namespace=namespace, workdir=tmp_path)

    report = ChaosRun(plan, backend, tmp_path).run()
    chaos_reports.append(report)

    assert report.summary["engine_kills"] == 8
    assert report.summary["worker_kills"] == 4
    assert not report.problems, "\n".join(report.problems[:60])
