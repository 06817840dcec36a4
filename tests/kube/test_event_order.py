"""`kubectl describe execution` lists the operator's Events in the order they happened, every time.

kubectl sorts an object's Events by `lastTimestamp` alone (whole seconds) and leaves an already
sorted list as the API server gave it, by name. The test posts 14 Events back to back (mostly
within one second, so they tie) through the operator's own client with the chart's RBAC, and
reads them back as kubectl does: 14! orders, one of them right, if the names were random.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from lightkube import AsyncClient, KubeConfig

from cerebelum_operator.kube.client import KubeApi, ObjectRef
from tests.support.control_plane import ControlPlane
from tests.support.kube import describe_event_reasons, kubectl_json, service_account_kubeconfig

pytestmark = pytest.mark.kube

REASONS = [f"Step{n:02d}" for n in range(1, 15)]  # 14: more than kubectl's insertion-sort cut-off (12)


async def test_kubectl_describe_lists_an_execution_s_events_in_the_order_they_were_posted(
    control_plane: ControlPlane, crds: list[str], namespace: str, operator_rbac: None, tmp_path: Path
) -> None:
    document = {
        "apiVersion": "cerebelum.io/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": "ordered-1"},
        "spec": {"workflow": "nothing-runs-it"},
    }
    created = json.loads(
        control_plane.kubectl("create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(document)).stdout
    )
    ref = ObjectRef(kind="Execution", namespace=namespace, name="ordered-1", uid=created["metadata"]["uid"])
    kubeconfig = service_account_kubeconfig(control_plane, tmp_path / "operator.kubeconfig")
    api = KubeApi(AsyncClient(config=KubeConfig.from_file(kubeconfig)), instance="test-operator")
    try:
        for reason in REASONS:
            await api.post_event(ref, type_="Normal", reason=reason, note=f"{reason} happened", action="Project")
    finally:
        await api.close()

    # As kubectl describe reads them: core v1 Events selected by the object they are about.
    selector = f"involvedObject.name=ordered-1,involvedObject.kind=Execution,involvedObject.uid={ref.uid}"
    listed = kubectl_json(control_plane, "get", "events", "-n", namespace, "--field-selector", selector)["items"]
    assert [e["reason"] for e in listed] == REASONS, "the API server lists them by name: in the order posted"
    stamps = [datetime.fromisoformat(e["lastTimestamp"]) for e in listed]
    assert stamps == sorted(stamps), "what kubectl sorts on grows with the list, so its sort keeps the order"
    assert all(e["count"] == 1 and e["firstTimestamp"] == e["lastTimestamp"] for e in listed)
    assert all(e["reportingComponent"] == "cerebelum.io/operator" and e["eventTime"] for e in listed)

    assert describe_event_reasons(control_plane, namespace, "ordered-1") == REASONS
