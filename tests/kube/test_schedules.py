"""Schedule objects through the operator on a real kube-apiserver (issue 17).

The operator runs as a real process with a token of the chart's ServiceAccount, bound only to the
chart's RBAC (so creating a fire's Execution, and reading and patching Schedules, are what the
chart allows). No worker is needed: the workflow's one step is a 1 ms timer, which the engine runs
itself. Schedules fire every 2 s; "nothing more fires" is shown against a second schedule that
keeps firing, never by sleeping.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.control_plane import ControlPlane
from tests.support.kube import kubectl_json, wait_for_jsonpath
from tests.support.processes import OperatorProcess
from tests.support.waiting import wait_until

from .test_operator import apply, status, wait_phase, workflow

pytestmark = pytest.mark.kube

CHILD_ANNOTATION = "cerebelum.io/execution-id"
SCHEDULE_LABEL = "cerebelum.io/schedule"
NAP = workflow("nap", ["nap"], steps={"nap": {"timer": {"duration": "1ms"}}}, output="input")


def schedule(name: str, **spec: object) -> dict[str, Any]:
    body = {"workflow": "nap", "interval": "2s", "input": {"from": name}, **spec}
    return {"apiVersion": "cerebelum.io/v1alpha1", "kind": "Schedule", "metadata": {"name": name}, "spec": body}


def fires_of(control_plane: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    listed = kubectl_json(control_plane, "get", "executions", "-n", namespace, "-l", f"{SCHEDULE_LABEL}={name}")
    items: list[dict[str, Any]] = listed["items"]
    return items


def wait_fires(control_plane: ControlPlane, namespace: str, name: str, count: int, *, within: float = 60) -> None:
    wait_until(
        lambda: len(fires_of(control_plane, namespace, name)) >= count,
        within=within,
        what=f"{count} Execution objects of schedule {name}",
    )


def due_of(engine_id: str) -> datetime:
    return datetime.strptime(engine_id.rsplit("-", 1)[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def uid_of(control_plane: ControlPlane, namespace: str, resource: str) -> str:
    return str(kubectl_json(control_plane, "get", resource, "-n", namespace)["metadata"]["uid"])


def test_a_schedule_creates_executions_owned_by_it_that_run_and_succeed(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply(control_plane, namespace, NAP, schedule("every"))
    uid = uid_of(control_plane, namespace, "schedule/every")

    wait_fires(control_plane, namespace, "every", 2)

    for fire in fires_of(control_plane, namespace, "every")[:2]:
        meta = fire["metadata"]
        assert meta["ownerReferences"] == [
            {"apiVersion": "cerebelum.io/v1alpha1", "kind": "Schedule", "name": "every", "uid": uid, "controller": True}
        ]
        engine_id = meta["annotations"][CHILD_ANNOTATION]
        assert engine_id.startswith(f"{namespace}:every-"), engine_id
        assert fire["spec"] == {"workflow": "nap", "input": {"from": "every"}}
        wait_phase(control_plane, namespace, meta["name"], "Succeeded")
        shown = status(control_plane, namespace, f"execution/{meta['name']}")
        assert shown["executionId"] == engine_id and shown["output"] == {"from": "every"}
        assert operator.history(engine_id)[0]["kind"] == "ExecutionStarted"
    wait_until(
        lambda: len(status(control_plane, namespace, "schedule/every").get("recentFires", [])) >= 2,
        within=30,
        what="the schedule's status to list its fires",
    )
    shown = status(control_plane, namespace, "schedule/every")
    ready = {c["type"]: c for c in shown["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "Scheduled"), ready
    assert shown["schedule"] == "every 2s" and shown["paused"] is False
    assert shown["lastFireTime"].endswith("Z") and shown["nextFireTime"] > shown["lastDueTime"]
    names = {f["metadata"]["name"] for f in fires_of(control_plane, namespace, "every")}
    assert all(f["execution"] in names for f in shown["recentFires"] if f["outcome"] == "started"), shown
    row = control_plane.kubectl("get", "schedules", "-n", namespace, "--no-headers").stdout.split()
    assert row[:5] == ["every", "nap", "every", "2s", "UTC"], row


def test_pausing_stops_fires_and_shows_the_note_and_deleting_stops_them_for_good(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply(control_plane, namespace, NAP, schedule("paused"), schedule("deleted"))
    wait_fires(control_plane, namespace, "paused", 1)
    wait_fires(control_plane, namespace, "deleted", 1)

    apply(control_plane, namespace, schedule("paused", paused=True, note="the greeter is being upgraded"))
    wait_for_jsonpath(control_plane, "schedule/paused", namespace, "{.status.paused}", "true", timeout=30)
    started_when_paused = status(control_plane, namespace, "schedule/paused")["started"]
    control_plane.kubectl("delete", "schedule/deleted", "-n", namespace, "--timeout=60s")
    deleted_at = datetime.now(UTC)
    apply(control_plane, namespace, schedule("control"))
    wait_fires(control_plane, namespace, "control", 3)

    shown = status(control_plane, namespace, "schedule/paused")
    assert shown["note"] == "the greeter is being upgraded" and "nextFireTime" not in shown, shown
    ready = {c["type"]: c for c in shown["conditions"]}["Ready"]
    assert ready["message"] == "paused: the greeter is being upgraded"
    assert shown["started"] == started_when_paused
    assert len(fires_of(control_plane, namespace, "paused")) == started_when_paused
    dues = [
        due_of(f["metadata"]["annotations"][CHILD_ANNOTATION]) for f in fires_of(control_plane, namespace, "deleted")
    ]
    assert dues and max(dues) <= deleted_at, (dues, deleted_at)


def test_an_execution_claiming_another_schedule_s_fire_is_refused(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply(control_plane, namespace, NAP, schedule("real"), schedule("other", paused=True))
    wait_fires(control_plane, namespace, "real", 1)
    real_id = fires_of(control_plane, namespace, "real")[0]["metadata"]["annotations"][CHILD_ANNOTATION]
    other_uid = uid_of(control_plane, namespace, "schedule/other")
    forged = {
        "apiVersion": "cerebelum.io/v1alpha1",
        "kind": "Execution",
        "metadata": {
            "name": "forged",
            "labels": {SCHEDULE_LABEL: "other"},
            "annotations": {CHILD_ANNOTATION: real_id},
            "ownerReferences": [
                {
                    "apiVersion": "cerebelum.io/v1alpha1",
                    "kind": "Schedule",
                    "name": "other",
                    "uid": other_uid,
                    "controller": True,
                }
            ],
        },
        "spec": {"workflow": "nap"},
    }

    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(forged))

    wait_phase(control_plane, namespace, "forged", "Failed")
    accepted = {c["type"]: c for c in status(control_plane, namespace, "execution/forged")["conditions"]}["Accepted"]
    assert accepted["reason"] == "InvalidChild", accepted
    assert f"engine execution {real_id!r} was not started by the Schedule 'other'" in accepted["message"]


def test_a_sigkill_and_restart_of_the_operator_between_fires_fires_each_due_time_once(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply(control_plane, namespace, NAP, schedule("steady"))
    wait_fires(control_plane, namespace, "steady", 2)

    operator.kill()
    operator.start()

    before = len(fires_of(control_plane, namespace, "steady"))
    wait_fires(control_plane, namespace, "steady", before + 3, within=90)
    fires = fires_of(control_plane, namespace, "steady")
    ids = [f["metadata"]["annotations"][CHILD_ANNOTATION] for f in fires]
    assert len(set(ids)) == len(ids), ids
    dues = sorted(due_of(engine_id) for engine_id in ids)
    gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(dues)}
    assert gaps == {2.0}, f"every due time fired once, none twice, none skipped: {dues}"
    wait_until(
        lambda: status(control_plane, namespace, "schedule/steady").get("started", 0) >= len(ids),
        within=30,
        what="the schedule's status to count its fires",
    )
    assert status(control_plane, namespace, "schedule/steady")["missed"] == 0
    for engine_id in ids:
        assert [e["kind"] for e in operator.history(engine_id)].count("ExecutionStarted") == 1
