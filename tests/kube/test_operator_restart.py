"""An operator restart does not grow with history (issue 21, item 5), on a real kube-apiserver with the
real operator process bound to the chart's RBAC.

A finished Execution is labelled `cerebelum.io/finished` and leaves the operator's watch: after a
SIGKILL and a restart its handler does not run (no store read, no replay, no memory in kopf), an
object finished before the label existed (an upgrade) is labelled on that restart, `/readyz` says
ready only once every unfinished Execution was handled and its status projected, and the
time-to-live of the finished objects still runs out, learnt from the objects themselves.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

import pytest

from tests.support.control_plane import ControlPlane
from tests.support.kube import apply_yaml, kubectl_json, wait_for_jsonpath
from tests.support.processes import OperatorProcess, free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.kube

FINISHED = "cerebelum.io/finished"

WORKFLOWS = """
apiVersion: cerebelum.io/v1alpha1
kind: Workflow
metadata: {name: quick}
spec:
  taskQueue: test
  timeline: [nap]
  steps: {nap: {timer: {duration: 1ms}}}
  ttlAfterFinished: 14s
---
apiVersion: cerebelum.io/v1alpha1
kind: Workflow
metadata: {name: sleepy}
spec:
  taskQueue: test
  timeline: [nap]
  steps: {nap: {timer: {duration: 1h}}}
"""

EXECUTION = """
apiVersion: cerebelum.io/v1alpha1
kind: Execution
metadata: {{name: {name}}}
spec: {{workflow: {workflow}, input: {{}}}}
"""


def readyz(port: int) -> int | None:
    """/readyz's status code, None while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (ConnectionError, urllib.error.URLError, TimeoutError):
        return None


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf"^{name}(?:_total)? (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} is not among the metrics"
    return float(found.group(1))


def finished_names(control_plane: ControlPlane, namespace: str) -> set[str]:
    listed = kubectl_json(control_plane, "get", "executions", "-n", namespace, "-l", FINISHED)
    return {item["metadata"]["name"] for item in listed["items"]}


def phase(control_plane: ControlPlane, namespace: str, name: str) -> str | None:
    found = kubectl_json(control_plane, "get", f"execution/{name}", "-n", namespace)
    return (found.get("status") or {}).get("phase")


def test_a_restart_handles_no_finished_execution_is_ready_once_caught_up_and_finished_objects_still_expire(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    health = free_port()
    operator.stop()
    operator.extra_args = (*operator.extra_args, "--health-address", f"127.0.0.1:{health}")
    operator.start()

    apply = apply_yaml(control_plane, WORKFLOWS, namespace=namespace)
    assert apply.returncode == 0, apply.stderr
    quick = [f"quick-{i}" for i in range(1, 7)]
    text = "---".join(EXECUTION.format(name=name, workflow="quick") for name in quick)
    apply = apply_yaml(
        control_plane, text + "---" + EXECUTION.format(name="sleeper", workflow="sleepy"), namespace=namespace
    )
    assert apply.returncode == 0, apply.stderr
    wait_for_jsonpath(control_plane, "execution/sleeper", namespace, "{.status.phase}", "Sleeping", timeout=30)
    wait_until(
        lambda: finished_names(control_plane, namespace) == set(quick), within=30, what="the quick ones labelled"
    )
    labelled = kubectl_json(control_plane, "get", "execution/quick-2", "-n", namespace)["metadata"]
    assert labelled["annotations"]["cerebelum.io/ttl-after-finished"] == "14s", "its time-to-live, on the object"
    assert not labelled.get("finalizers"), "a finished object carries no finalizer"
    assert "finalizers" in kubectl_json(control_plane, "get", "execution/sleeper", "-n", namespace)["metadata"]

    # Down: one object loses its label (as if it finished under the release before), one is created.
    operator.kill()
    control_plane.kubectl("label", "execution/quick-1", "-n", namespace, f"{FINISHED}-")
    apply = apply_yaml(control_plane, EXECUTION.format(name="late", workflow="sleepy"), namespace=namespace)
    assert apply.returncode == 0, apply.stderr

    spawned = time.monotonic()
    operator.launch()
    answers: list[int] = []

    def ready() -> bool:
        code = readyz(health)
        if code is not None:
            answers.append(code)
        return code == 200

    wait_until(ready, within=30, what="/readyz to answer 200 after the restart")
    # Ready means caught up: the Execution created while no operator ran shows its status already.
    assert phase(control_plane, namespace, "late") == "Sleeping"
    assert phase(control_plane, namespace, "sleeper") == "Sleeping"
    assert 503 in answers, f"/readyz said ready before it caught up: {answers}"
    assert metric(health, "cerebelum_kube_caught_up") == 1
    wait_until(
        lambda: finished_names(control_plane, namespace) >= set(quick),
        within=15,
        what="the object finished before the label existed, labelled on the restart",
    )
    # Handled on the restart: the two unfinished ones and the unlabelled finished one, not the five labelled.
    assert metric(health, "cerebelum_kube_execution_handler_runs") == 3
    print(f"ready {time.monotonic() - spawned:.1f} s after the spawn")

    # Their time-to-live (14 s after they finished) still runs out: the restarted operator learnt it
    # from the objects' status and annotation.
    wait_until(
        lambda: not finished_names(control_plane, namespace),
        within=40,
        what="the finished objects deleted after their time-to-live, by the restarted operator",
    )
    remaining = {
        item["metadata"]["name"] for item in kubectl_json(control_plane, "get", "executions", "-n", namespace)["items"]
    }
    assert remaining == {"sleeper", "late"}
    assert metric(health, "cerebelum_kube_execution_handler_runs") == 3, "finishing, and leaving, runs no handler"
