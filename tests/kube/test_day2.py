"""Pause and flow control through the operator, on a real API server with the chart's RBAC (issue 19).

An Execution is paused by its annotation `cerebelum.io/paused: "true"` (its spec is immutable), so
`kubectl annotate executions -l ...` pauses and resumes many at once; a Workflow's flowControl makes
executions of one key wait, Queued, with the reason in their status.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import pytest
import yaml

from cerebelum import Client
from tests.support.control_plane import ControlPlane
from tests.support.flow import running_span
from tests.support.kube import apply_yaml, kubectl_json, wait_for_jsonpath
from tests.support.processes import OperatorProcess
from tests.support.waiting import wait_until

from .operator_fixtures import StartWorker

pytestmark = pytest.mark.kube


def resource(kind: str, name: str, spec: Mapping[str, object], **metadata: object) -> dict[str, object]:
    return {"apiVersion": "cerebelum.io/v1alpha1", "kind": kind, "metadata": {"name": name, **metadata}, "spec": spec}


def apply(control_plane: ControlPlane, namespace: str, *documents: dict[str, object]) -> None:
    result = apply_yaml(control_plane, yaml.safe_dump_all(documents), namespace=namespace)
    assert result.returncode == 0, result.stderr


def status(control_plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kubectl_json(control_plane, "get", f"execution/{name}", "-n", namespace).get("status")
    return found or {}


def step_phase(control_plane: ControlPlane, namespace: str, name: str, step: str) -> str | None:
    steps = status(control_plane, namespace, name).get("steps") or []
    return next((s["phase"] for s in steps if s["name"] == step), None)


def held(control_plane: ControlPlane, namespace: str, name: str, step: str) -> bool:
    return step_phase(control_plane, namespace, name, step) == "Held"


def uid_of(control_plane: ControlPlane, namespace: str, name: str) -> str:
    return str(kubectl_json(control_plane, "get", f"execution/{name}", "-n", namespace)["metadata"]["uid"])


def message(control_plane: ControlPlane, namespace: str, name: str) -> str:
    conditions = status(control_plane, namespace, name).get("conditions") or []
    assert isinstance(conditions, list)
    return " ".join(str(c.get("message", "")) for c in conditions if c.get("type") == "Succeeded")


def test_executions_are_paused_and_resumed_by_their_annotation_one_or_many_by_label(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess, start_worker: StartWorker
) -> None:
    start_worker()
    nap = {"taskQueue": "test", "timeline": ["nap", "a"], "steps": {"nap": {"timer": {"duration": "2s"}}}}
    apply(
        control_plane,
        namespace,
        resource("Workflow", "napper", nap),
        resource(
            "Execution", "born-paused", {"workflow": "napper", "input": {}}, annotations={"cerebelum.io/paused": "true"}
        ),
        *(
            resource("Execution", f"batch-{n}", {"workflow": "napper", "input": {}}, labels={"batch": "x"})
            for n in range(2)
        ),
    )
    wait_for_jsonpath(control_plane, "execution/born-paused", namespace, "{.status.phase}", "Paused", timeout=30)
    assert "annotation cerebelum.io/paused is true" in message(control_plane, namespace, "born-paused")

    control_plane.kubectl("annotate", "executions", "-n", namespace, "-l", "batch=x", "cerebelum.io/paused=true")
    for name in ("batch-0", "batch-1"):  # the timer ends while paused; the step after it is held
        wait_for_jsonpath(control_plane, f"execution/{name}", namespace, "{.status.phase}", "Paused", timeout=30)
        wait_until(partial(held, control_plane, namespace, name, "a"), within=30, what=f"{name}'s step a held")

    control_plane.kubectl("annotate", "executions", "-n", namespace, "--all", "cerebelum.io/paused-")
    for name in ("born-paused", "batch-0", "batch-1"):
        wait_for_jsonpath(control_plane, f"execution/{name}", namespace, "{.status.phase}", "Succeeded", timeout=60)
    history = operator.history(uid_of(control_plane, namespace, "batch-0"))
    kinds = [e["kind"] for e in history]
    assert kinds.count("ExecutionPaused") == kinds.count("ExecutionResumed") == 1
    assert [e["data"]["source"] for e in history if e["kind"] == "ExecutionPaused"] == ["Execution"]


def test_flow_control_queues_an_execution_behind_the_one_of_its_key_and_says_why(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess, start_worker: StartWorker
) -> None:
    start_worker()
    one_at_a_time = {
        "taskQueue": "test",
        "timeline": ["nap", "a"],
        "steps": {"nap": {"timer": {"duration": "2s"}}},
        "flowControl": {"key": "input.customer", "concurrency": 1},
    }
    apply(
        control_plane,
        namespace,
        resource("Workflow", "orders", one_at_a_time),
        resource("Execution", "acme-1", {"workflow": "orders", "input": {"customer": "acme"}}),
    )
    wait_for_jsonpath(control_plane, "execution/acme-1", namespace, "{.status.phase}", "Sleeping", timeout=30)
    apply(
        control_plane,
        namespace,
        resource("Execution", "acme-2", {"workflow": "orders", "input": {"customer": "acme"}}),
        resource("Execution", "zeta-1", {"workflow": "orders", "input": {"customer": "zeta"}}),
    )
    wait_for_jsonpath(control_plane, "execution/acme-2", namespace, "{.status.phase}", "Queued", timeout=30)
    assert "at most 1 execution runs at once for key 'acme'" in message(control_plane, namespace, "acme-2")

    for name in ("acme-1", "acme-2", "zeta-1"):
        wait_for_jsonpath(control_plane, f"execution/{name}", namespace, "{.status.phase}", "Succeeded", timeout=60)
    with Client(address=operator.address) as client:
        spans = [running_span(client, uid_of(control_plane, namespace, name)) for name in ("acme-1", "acme-2")]
    assert spans[1][0] >= spans[0][1], f"acme-2 ran before acme-1 ended: {spans}"


def test_an_executions_labels_are_its_labels_in_the_engine_and_too_many_refuse_it_with_the_reason(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    nap = {"timeline": ["nap"], "steps": {"nap": {"timer": {"duration": "1s"}}}}
    labels = {"team": "billing", "app.kubernetes.io/part-of": "shop"}
    apply(
        control_plane,
        namespace,
        resource("Workflow", "labelled", nap),
        resource("Execution", "labelled-1", {"workflow": "labelled", "input": {}}, labels=labels),
        resource(
            "Execution", "labelled-2", {"workflow": "labelled", "input": {}}, labels={f"k{n}": "v" for n in range(33)}
        ),
    )
    wait_for_jsonpath(control_plane, "execution/labelled-1", namespace, "{.status.phase}", "Succeeded", timeout=30)
    wait_for_jsonpath(control_plane, "execution/labelled-2", namespace, "{.status.phase}", "Failed", timeout=30)
    with Client(address=operator.address) as client:
        # The object's labels, and its name (the engine knows it by its uid; people search by name).
        assert client.get(uid_of(control_plane, namespace, "labelled-1")).labels == {
            **labels,
            "cerebelum.io/execution": "labelled-1",
        }
        assert [e.id for e in client.list(labels={"team": "billing"})] == [
            uid_of(control_plane, namespace, "labelled-1")
        ]
    conditions = {c["type"]: c for c in status(control_plane, namespace, "labelled-2")["conditions"]}
    assert conditions["Accepted"]["reason"] == "LabelsInvalid", conditions
    assert "metadata.labels: an execution has at most 32 labels, not 33" in conditions["Accepted"]["message"]
