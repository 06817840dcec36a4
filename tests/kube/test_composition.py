"""Signals, child workflows and continue-as-new through the operator on a real kube-apiserver (issue 17).

The operator runs as a real process with a token of the chart's ServiceAccount, bound only to the
chart's RBAC (so creating a child's Execution and patching a Signal's status are what the chart
allows), and the chart's admission policies stamp who sent each Signal. No worker is needed: every
step here is a signal, child or continue-as-new step, which the engine runs itself.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.control_plane import ControlPlane
from tests.support.kube import kubectl_json, wait_for_jsonpath
from tests.support.processes import OperatorProcess
from tests.support.waiting import wait_until

from .test_operator import apply, execution, status, wait_phase, workflow

pytestmark = pytest.mark.kube

CHILD_ANNOTATION = "cerebelum.io/execution-id"


def signal(name: str, execution_name: str, signal_name: str, data: object = None, **extra: object) -> dict[str, Any]:
    spec = {"execution": execution_name, "name": signal_name, "data": data, **extra}
    return {"apiVersion": "cerebelum.io/v1alpha1", "kind": "Signal", "metadata": {"name": name}, "spec": spec}


def uid_of(control_plane: ControlPlane, namespace: str, resource: str) -> str:
    return str(kubectl_json(control_plane, "get", resource, "-n", namespace)["metadata"]["uid"])


def children_of(control_plane: ControlPlane, namespace: str, parent_uid: str) -> list[dict[str, Any]]:
    listed = kubectl_json(
        control_plane, "get", "executions", "-n", namespace, "-l", f"cerebelum.io/parent-uid={parent_uid}"
    )
    items: list[dict[str, Any]] = listed["items"]
    return items


def the_child(control_plane: ControlPlane, namespace: str, parent_uid: str) -> dict[str, Any]:
    wait_until(
        lambda: len(children_of(control_plane, namespace, parent_uid)) == 1,
        within=30,
        what="the child's Execution object",
    )
    (child,) = children_of(control_plane, namespace, parent_uid)
    return child


def test_a_signal_object_is_delivered_to_the_waiting_execution_in_the_name_of_whoever_created_it(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply(
        control_plane,
        namespace,
        workflow("gate", ["ready"], steps={"ready": {"signal": {"name": "ready"}}}, output="steps.ready.data"),
        execution("gate-1", "gate"),
    )
    wait_phase(control_plane, namespace, "gate-1", "WaitingForSignal")
    # Bob may create Signals, nothing else; he claims to be someone else, and admission overrules him.
    control_plane.kubectl("create", "serviceaccount", "bob", "-n", namespace)
    control_plane.kubectl(
        "create", "role", "signaller", "-n", namespace, "--verb=create,get", "--resource=signals.cerebelum.io"
    )
    control_plane.kubectl(
        "create", "rolebinding", "bob-signals", "-n", namespace, "--role=signaller", f"--serviceaccount={namespace}:bob"
    )
    token = control_plane.kubectl("create", "token", "bob", "-n", namespace).stdout.strip()
    sent = signal("ready-1", "gate-1", "ready", {"batch": 7}, sender="the-ceo")

    created = control_plane.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(sent), token=token)

    assert created.returncode == 0, created.stderr
    bob = f"system:serviceaccount:{namespace}:bob"
    wait_for_jsonpath(control_plane, "signal/ready-1", namespace, "{.status.phase}", "Delivered", timeout=30)
    wait_phase(control_plane, namespace, "gate-1", "Succeeded")
    recorded = status(control_plane, namespace, "signal/ready-1")
    uid = uid_of(control_plane, namespace, "execution/gate-1")
    assert recorded["sender"] == bob and recorded["runId"] == uid, recorded
    assert kubectl_json(control_plane, "get", "signal/ready-1", "-n", namespace)["spec"]["sender"] == bob
    assert status(control_plane, namespace, "execution/gate-1")["output"] == {"batch": 7}
    received = [e["data"] for e in operator.history(uid) if e["kind"] == "SignalReceived"]
    signal_uid = uid_of(control_plane, namespace, "signal/ready-1")
    assert [(r["sender"], r["data"], r["request_id"]) for r in received] == [(bob, {"batch": 7}, signal_uid)]


def test_a_signal_for_an_execution_of_another_namespace_is_refused(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    other = f"{namespace}-other"
    control_plane.kubectl("create", "namespace", other)
    waits = workflow("gate", ["ready"], steps={"ready": {"signal": {"name": "ready"}}})
    apply(control_plane, other, waits, execution("theirs", "gate"))
    apply(control_plane, namespace, waits)

    as_path = control_plane.kubectl(
        "create",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(signal("s1", f"../../{other}/executions/theirs", "ready")),
        check=False,
    )
    apply(control_plane, namespace, signal("s2", "theirs", "ready"))

    assert as_path.returncode != 0 and "spec.execution" in as_path.stderr, "the API server refuses a path"
    wait_for_jsonpath(control_plane, "signal/s2", namespace, "{.status.phase}", "Refused", timeout=30)
    assert status(control_plane, namespace, "signal/s2")["message"] == (
        f"execution 'theirs' not found in namespace {namespace}"
    )


CHILD_FLOW = [
    workflow(
        "parent",
        ["spawn"],
        steps={"spawn": {"child": {"workflow": "greeter", "input": "{'name': input.who}"}}},
        output="steps.spawn",
    ),
    workflow(
        "greeter",
        ["go"],
        steps={"go": {"signal": {"name": "go"}}},
        output="{'greeting': 'hello ' + input.name}",
    ),
]


def test_a_child_execution_object_is_created_owned_by_its_parent_and_signalled_to_the_parent_s_success(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply(control_plane, namespace, *CHILD_FLOW, execution("parent-1", "parent", {"who": "ada"}))
    parent_uid = uid_of(control_plane, namespace, "execution/parent-1")

    child = the_child(control_plane, namespace, parent_uid)

    name = child["metadata"]["name"]
    assert name.startswith("parent-1-spawn-"), name
    assert child["metadata"]["ownerReferences"] == [
        {"apiVersion": "cerebelum.io/v1alpha1", "kind": "Execution", "name": "parent-1", "uid": parent_uid,
         "controller": True}
    ]  # fmt: skip
    child_id = child["metadata"]["annotations"][CHILD_ANNOTATION]
    assert child["spec"] == {"workflow": "greeter", "input": {"name": "ada"}}
    wait_phase(control_plane, namespace, name, "WaitingForSignal")
    shown = status(control_plane, namespace, f"execution/{name}")
    assert shown["executionId"] == child_id
    assert shown["parent"] == {"name": "parent-1", "executionId": parent_uid, "step": "spawn"}
    wait_until(
        lambda: (
            [c.get("name") for c in status(control_plane, namespace, "execution/parent-1").get("children", [])]
            == [name]
        ),
        within=30,
        what="the parent's status to list its child",
    )

    apply(control_plane, namespace, signal("go-1", name, "go"))

    wait_phase(control_plane, namespace, "parent-1", "Succeeded")
    assert status(control_plane, namespace, "execution/parent-1")["output"] == {"greeting": "hello ada"}
    wait_phase(control_plane, namespace, name, "Succeeded")
    assert operator.history(child_id)[0]["kind"] == "ExecutionStarted"
    assert len(children_of(control_plane, namespace, parent_uid)) == 1, "the child's object started nothing new"


def test_an_execution_claiming_a_child_it_does_not_own_is_refused_and_deleting_it_cancels_nothing(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply(control_plane, namespace, *CHILD_FLOW, execution("parent-1", "parent", {"who": "ada"}))
    child = the_child(control_plane, namespace, uid_of(control_plane, namespace, "execution/parent-1"))
    child_id = child["metadata"]["annotations"][CHILD_ANNOTATION]
    claim = execution("claim", "greeter")
    claim["metadata"] = {"name": "claim", "annotations": {CHILD_ANNOTATION: child_id}}

    apply(control_plane, namespace, claim)

    wait_phase(control_plane, namespace, "claim", "Failed")
    accepted = {c["type"]: c for c in status(control_plane, namespace, "execution/claim")["conditions"]}["Accepted"]
    assert accepted["reason"] == "InvalidChild" and "no Execution owns this object" in accepted["message"]
    control_plane.kubectl("delete", "execution/claim", "-n", namespace)
    wait_phase(control_plane, namespace, child["metadata"]["name"], "WaitingForSignal")


def test_deleting_a_parent_execution_cancels_its_child(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply(control_plane, namespace, *CHILD_FLOW, execution("parent-1", "parent", {"who": "ada"}))
    child = the_child(control_plane, namespace, uid_of(control_plane, namespace, "execution/parent-1"))
    name = child["metadata"]["name"]
    wait_phase(control_plane, namespace, name, "WaitingForSignal")

    # Kubernetes' garbage collector deletes the child's object after its owner (this test's API
    # server runs no controllers, so the object stays and shows how the child ended).
    control_plane.kubectl("delete", "execution/parent-1", "-n", namespace, "--wait=false")

    wait_phase(control_plane, namespace, name, "Cancelled")
    child_id = child["metadata"]["annotations"][CHILD_ANNOTATION]
    assert operator.history(child_id)[-1]["kind"] == "ExecutionCancelled"


def test_a_continue_as_new_chain_shows_its_latest_run_in_its_first_execution_object_to_succeeded(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    loop = workflow(
        "loop",
        ["tick", "again"],
        input={"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]},
        steps={
            "tick": {"signal": {"name": "tick"}},
            "again": {"continueAsNew": {"input": "{'count': input.count + 1}"}},
        },
        branch={"tick": [{"when": "input.count >= 2", "then": "succeed"}]},
    )
    apply(control_plane, namespace, loop, execution("loop-1", "loop", {"count": 0}))
    uid = uid_of(control_plane, namespace, "execution/loop-1")

    for run in (1, 2, 3):
        wait_for_jsonpath(control_plane, "execution/loop-1", namespace, "{.status.run}", str(run), timeout=30)
        wait_phase(control_plane, namespace, "loop-1", "WaitingForSignal")
        apply(control_plane, namespace, signal(f"tick-{run}", "loop-1", "tick"))
        wait_for_jsonpath(control_plane, f"signal/tick-{run}", namespace, "{.status.phase}", "Delivered", timeout=30)

    wait_phase(control_plane, namespace, "loop-1", "Succeeded")
    shown = status(control_plane, namespace, "execution/loop-1")
    assert (shown["executionId"], shown["run"], shown["runId"]) == (uid, 3, f"{uid}:run-3")
    assert status(control_plane, namespace, "signal/tick-3")["runId"] == f"{uid}:run-3"
    listed = control_plane.kubectl("get", "executions", "-n", namespace, "--no-headers").stdout.split()
    assert listed[:3] == ["loop-1", "Succeeded", "loop"]
    assert [e["kind"] for e in operator.history(uid)][-1] == "ExecutionContinuedAsNew"
