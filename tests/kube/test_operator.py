"""The operator as users meet it, on a real kube-apiserver: kubectl in, status and Events out.

The operator runs as a real process with a token of the Helm chart's ServiceAccount, bound only
to the chart's RBAC; the worker is a real process too, and keeps a ledger of every step it runs.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import WORKER_SCRIPT, read_ledger
from tests.support.control_plane import ControlPlane
from tests.support.kube import (
    OPERATOR_NAMESPACE,
    apply_yaml,
    describe_event_reasons,
    kubectl_json,
    service_account_kubeconfig,
    token_kubeconfig,
    wait_for_jsonpath,
)
from tests.support.processes import OperatorProcess, WorkerPool, WorkerProcess, free_port
from tests.support.waiting import wait_until

from .operator_fixtures import StartWorker

SAGA_WORKER = Path(__file__).parents[1] / "integration" / "workers" / "saga_worker.py"
FAN_WORKER = Path(__file__).parents[1] / "integration" / "workers" / "fan_worker.py"

pytestmark = pytest.mark.kube


Document = dict[str, object]


def workflow(name: str, timeline: Sequence[object], **extra: object) -> Document:
    spec = {"taskQueue": "test", "timeline": timeline, **extra}
    return {"apiVersion": "cerebelum.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name}, "spec": spec}


def execution(name: str, workflow_name: str, input: object = None) -> Document:
    spec = {"workflow": workflow_name, "input": input if input is not None else {}}
    return {"apiVersion": "cerebelum.io/v1alpha1", "kind": "Execution", "metadata": {"name": name}, "spec": spec}


def apply(control_plane: ControlPlane, namespace: str, *documents: Document) -> None:
    result = apply_yaml(control_plane, yaml.safe_dump_all(documents), namespace=namespace)
    assert result.returncode == 0, result.stderr


def status(control_plane: ControlPlane, namespace: str, resource: str) -> dict[str, Any]:
    return kubectl_json(control_plane, "get", resource, "-n", namespace).get("status") or {}


def probe(port: int, path: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def answers(port: int) -> bool:
    """Whether an HTTP server listens on ``port`` (any status counts)."""
    try:
        probe(port, "/healthz")
    except (ConnectionError, urllib.error.URLError, TimeoutError):
        return False
    return True


def server_table(control_plane: ControlPlane, path: str) -> dict[str, Any]:
    """GET `path` as a meta.k8s.io Table, the way `kubectl get` asks the API server for columns."""
    request = urllib.request.Request(
        f"{control_plane.server}{path}",
        headers={
            "Accept": "application/json;as=Table;g=meta.k8s.io;v=v1",
            "Authorization": f"Bearer {control_plane.admin_token}",
        },
    )
    context = ssl.create_default_context(cafile=str(control_plane.ca_file))
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        table: dict[str, Any] = json.loads(response.read())
    assert table["kind"] == "Table", table
    return table


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
    return text


def wait_for_slow_step(ledger: Path) -> None:
    wait_until(
        lambda: any(r["step"] == "slow" and r["event"] == "start" for r in read_ledger(ledger)),
        within=30,
        what="the slow step to start",
    )


def wait_phase(control_plane: ControlPlane, namespace: str, name: str, phase: str, *, timeout: float = 30) -> None:
    wait_for_jsonpath(control_plane, f"execution/{name}", namespace, "{.status.phase}", phase, timeout=timeout)


def test_an_execution_applied_with_kubectl_runs_to_succeeded_and_the_printer_columns_show_it(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess, start_worker: StartWorker
) -> None:
    start_worker()
    apply(control_plane, namespace, workflow("three", ["s1", ["s2", "s3"], "after"]), execution("three-1", "three"))

    wait_phase(control_plane, namespace, "three-1", "Succeeded")

    shown = status(control_plane, namespace, "execution/three-1")
    assert [step["name"] for step in shown["steps"]] == ["s1", "s2", "s3", "after"]
    assert all(step["phase"] == "Succeeded" and step["attempts"] == 1 for step in shown["steps"])
    assert shown["eventCount"] >= 13
    assert shown["recentEvents"][-1]["type"] == "ExecutionSucceeded"
    assert shown["output"] is not None
    assert {c["type"]: c["status"] for c in shown["conditions"]} == {"Accepted": "True", "Succeeded": "True"}
    table = control_plane.kubectl("get", "executions", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "WORKFLOW", "STEP", "AGE"]
    assert table[1].split()[:3] == ["three-1", "Succeeded", "three"]
    ready = kubectl_json(control_plane, "get", "workflow/three", "-n", namespace)["status"]["conditions"]
    assert [(c["type"], c["status"], c["reason"]) for c in ready] == [("Ready", "True", "Compiled")]
    finalizers = kubectl_json(control_plane, "get", "execution/three-1", "-n", namespace)["metadata"].get("finalizers")
    assert not finalizers, "a finished execution must not hold a finalizer"
    events = kubectl_json(control_plane, "get", "events.events.k8s.io", "-n", namespace)["items"]
    reasons = {e["reason"] for e in events if e["regarding"]["name"] == "three-1"}
    # A start and a success show in the status alone: Events are for what someone may act on.
    assert not {"Started", "Succeeded"} & reasons, reasons
    succeeded = {c["type"]: c for c in shown["conditions"]}["Succeeded"]
    assert succeeded["message"].startswith("finished after 4 steps in "), succeeded

    # -o wide: the API server's Table (what kubectl asks for) has the wide columns, filled.
    table_of = server_table(control_plane, f"/apis/cerebelum.io/v1alpha1/namespaces/{namespace}/executions")
    wide = [c["name"] for c in table_of["columnDefinitions"] if c.get("priority") == 1]
    assert wide == ["Started", "Finished", "Events", "Execution-ID", "Run", "Parent", "Message"], table_of[
        "columnDefinitions"
    ]
    names = [c["name"] for c in table_of["columnDefinitions"]]
    (row,) = table_of["rows"]
    cells = dict(zip(names, row["cells"], strict=True))
    assert cells["Execution-ID"] == shown["executionId"]
    assert cells["Events"] == shown["eventCount"]
    assert cells["Message"] == succeeded["message"]
    assert (cells["Run"], cells["Parent"]) == (1, None), "a first run, no parent"
    assert cells["Started"] and cells["Finished"] and "<invalid>" not in (cells["Started"], cells["Finished"])
    printed = control_plane.kubectl("get", "executions", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert printed[0].split() == [
        *("NAME", "PHASE", "WORKFLOW", "STEP", "AGE", "STARTED", "FINISHED", "EVENTS", "EXECUTION-ID", "RUN"),
        *("PARENT", "MESSAGE"),
    ]
    assert shown["executionId"] in printed[1] and "finished after 4 steps in" in printed[1]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        pytest.param({"steps": {"nope": {"timeout": "1m"}}}, "nope", id="unknown-step-entry"),
        pytest.param(
            {"branch": {"a": [{"when": "reslt.retry", "goto": "b"}]}},
            "branch.a[0].when: unknown name 'reslt'; this expression can see input, phases, result, steps, vars;"
            " did you mean 'result'?",
            id="misspelt-cel-name",
        ),
    ],
)
def test_an_invalid_workflow_is_marked_invalid_and_an_execution_of_it_fails_naming_the_problem(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess, extra: dict[str, object], named: str
) -> None:
    apply(control_plane, namespace, workflow("broken", ["a", "b"], **extra), execution("broken-1", "broken"))

    wait_for_jsonpath(
        control_plane,
        "workflow/broken",
        namespace,
        '{.status.conditions[?(@.type=="Ready")].reason}',
        "Invalid",
        timeout=30,
    )
    ready = status(control_plane, namespace, "workflow/broken")["conditions"][0]
    assert ready["status"] == "False" and named in ready["message"], ready
    wait_phase(control_plane, namespace, "broken-1", "Failed")
    accepted = {c["type"]: c for c in status(control_plane, namespace, "execution/broken-1")["conditions"]}["Accepted"]
    assert accepted["status"] == "False" and accepted["reason"] == "WorkflowInvalid", accepted
    assert named in accepted["message"], accepted


def test_an_execution_whose_input_breaks_the_input_schema_is_refused_with_the_reason(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess, start_worker: StartWorker
) -> None:
    start_worker()
    schema = {"type": "object", "required": ["region"], "properties": {"region": {"type": "string"}}}
    apply(
        control_plane,
        namespace,
        workflow("typed", ["s1"], input=schema),
        execution("typed-bad", "typed", {"zone": "x"}),
        execution("typed-good", "typed", {"region": "eu"}),
    )

    wait_phase(control_plane, namespace, "typed-bad", "Failed")
    wait_phase(control_plane, namespace, "typed-good", "Succeeded")
    refused = status(control_plane, namespace, "execution/typed-bad")
    accepted = {c["type"]: c for c in refused["conditions"]}["Accepted"]
    assert accepted["reason"] == "InputInvalid" and "region" in accepted["message"], accepted
    assert "steps" not in refused, "a refused execution never ran a step"


def test_an_approval_resource_continues_the_waiting_step_and_records_who_approved(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess, start_worker: StartWorker
) -> None:
    start_worker()
    apply(
        control_plane,
        namespace,
        workflow("gated", ["s1", "go_live", "s2"], steps={"go_live": {"approval": {"timeout": "1h"}}}),
        execution("gated-1", "gated"),
    )
    wait_phase(control_plane, namespace, "gated-1", "WaitingForApproval")
    assert status(control_plane, namespace, "execution/gated-1")["pendingApproval"]["step"] == "go_live"

    # Alice may create Approvals, nothing else; she claims to be someone else, and admission overrules her.
    control_plane.kubectl("create", "serviceaccount", "alice", "-n", namespace)
    control_plane.kubectl(
        "create", "role", "approver", "-n", namespace, "--verb=create,get", "--resource=approvals.cerebelum.io"
    )
    control_plane.kubectl(
        "create",
        "rolebinding",
        "alice-approves",
        "-n",
        namespace,
        "--role=approver",
        f"--serviceaccount={namespace}:alice",
    )
    token = control_plane.kubectl("create", "token", "alice", "-n", namespace).stdout.strip()
    approval = {
        "apiVersion": "cerebelum.io/v1alpha1",
        "kind": "Approval",
        "metadata": {"name": "go-live-ok"},
        "spec": {"execution": "gated-1", "step": "go_live", "payload": {"ticket": "CHG-7"}, "approver": "the-ceo"},
    }
    created = control_plane.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(approval), token=token)
    assert created.returncode == 0, created.stderr

    alice = f"system:serviceaccount:{namespace}:alice"
    wait_for_jsonpath(control_plane, "approval/go-live-ok", namespace, "{.status.phase}", "Applied", timeout=30)
    wait_phase(control_plane, namespace, "gated-1", "Succeeded")
    recorded = status(control_plane, namespace, "approval/go-live-ok")
    assert recorded["approver"] == alice, recorded
    assert kubectl_json(control_plane, "get", "approval/go-live-ok", "-n", namespace)["spec"]["approver"] == alice
    steps = {s["name"]: s for s in status(control_plane, namespace, "execution/gated-1")["steps"]}
    assert steps["go_live"]["phase"] == "Succeeded"
    history = operator.history(
        kubectl_json(control_plane, "get", "execution/gated-1", "-n", namespace)["metadata"]["uid"]
    )
    events = kubectl_json(control_plane, "get", "events.events.k8s.io", "-n", namespace)["items"]
    approved = [e["note"] for e in events if e["regarding"]["name"] == "gated-1" and e["reason"] == "Approved"]
    assert approved == [f"step go_live of gated-1 approved by {alice}"], approved
    granted = [e for e in history if e["kind"] == "ApprovalGranted"]
    assert [(e["data"]["approver"], e["data"]["payload"]) for e in granted] == [(alice, {"ticket": "CHG-7"})]
    # kubectl describe lists the Events in the order they happened, on every run.
    in_order = ["WaitingForApproval", "Approved"]
    wait_until(
        lambda: describe_event_reasons(control_plane, namespace, "gated-1") == in_order,
        within=30,
        what=f"kubectl describe to list {in_order}",
    )


def test_an_approval_for_a_step_that_is_not_waiting_is_refused_with_the_reason(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess, start_worker: StartWorker
) -> None:
    start_worker()
    apply(control_plane, namespace, workflow("plain", ["s1"]), execution("plain-1", "plain"))
    wait_phase(control_plane, namespace, "plain-1", "Succeeded")
    apply(
        control_plane,
        namespace,
        {
            "apiVersion": "cerebelum.io/v1alpha1",
            "kind": "Approval",
            "metadata": {"name": "stray"},
            "spec": {"execution": "plain-1", "step": "s1"},
        },
    )
    wait_for_jsonpath(control_plane, "approval/stray", namespace, "{.status.phase}", "Refused", timeout=30)
    message = status(control_plane, namespace, "approval/stray")["message"]
    assert message, "a refusal must say why"


@pytest.mark.parametrize(
    "operator_database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_the_operator_sigkilled_during_a_sleep_and_during_a_running_step_finishes_both_after_a_restart(
    control_plane: ControlPlane,
    namespace: str,
    operator: OperatorProcess,
    start_worker: StartWorker,
    ledger: Path,
) -> None:
    start_worker()
    apply(
        control_plane,
        namespace,
        workflow("napper", ["s1", "nap", "s2"]),
        workflow("holder", ["s1", "slow", "s2"]),
        execution("napper-1", "napper", {"sleep_ms": 4000}),
        execution("holder-1", "holder", {"hold_s": 4}),
    )
    wait_phase(control_plane, namespace, "napper-1", "Sleeping")
    wait_for_slow_step(ledger)

    operator.kill()
    time.sleep(1)
    operator.start()

    wait_phase(control_plane, namespace, "napper-1", "Succeeded", timeout=60)
    wait_phase(control_plane, namespace, "holder-1", "Succeeded", timeout=60)
    uids = {
        name: kubectl_json(control_plane, "get", f"execution/{name}", "-n", namespace)["metadata"]["uid"]
        for name in ("napper-1", "holder-1")
    }
    runs = [(r["execution"], r["step"]) for r in read_ledger(ledger) if r["event"] == "run"]
    for uid in uids.values():
        assert runs.count((uid, "s1")) == 1, "a step completed before the kill must not run again"
        assert runs.count((uid, "s2")) == 1
    assert operator.starts == 2


def test_a_failed_execution_is_compensated_through_the_operator_across_an_operator_sigkill(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess, ledger: Path, tmp_path: Path
) -> None:
    pool = WorkerPool(script=SAGA_WORKER, address=operator.address, ledger=ledger, log_dir=tmp_path)
    pool.start()
    try:
        saga = workflow(
            "saga",
            ["book", "pay"],
            steps={"book": {"compensate": "unbook"}, "unbook": {"heartbeatTimeout": "20s"}},
            **{"finally": ["notify"]},
        )
        apply(control_plane, namespace, saga, execution("saga-1", "saga", {"fail_pay": True, "hold_s": 5}))
        wait_until(
            lambda: any(r["step"] == "unbook" and r["event"] == "start" for r in read_ledger(ledger)),
            within=60,
            what="the compensation",
        )
        operator.restart()  # SIGKILL while the compensation runs

        wait_phase(control_plane, namespace, "saga-1", "Failed", timeout=90)
        runs = [(r["step"], r["event"]) for r in read_ledger(ledger)]
        assert runs.count(("unbook", "run")) == 1 and runs.count(("notify", "run")) == 1
        assert "card declined" in status(control_plane, namespace, "execution/saga-1")["error"]
    finally:
        pool.stop_all()


def test_a_thousand_item_fan_out_finishes_through_the_operator_across_an_operator_sigkill(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess, ledger: Path, tmp_path: Path
) -> None:
    pool = WorkerPool(script=FAN_WORKER, address=operator.address, ledger=ledger, log_dir=tmp_path)
    pool.start()
    try:
        labelling = workflow(
            "labelling",
            ["parcels", "label"],
            steps={
                "label": {
                    "forEach": {"items": "steps.parcels.names", "concurrency": 50},
                    "args": {"parcel": "item", "position": "index", "broken": "false"},
                }
            },
        )
        apply(control_plane, namespace, labelling, execution("fan-1", "labelling", {"count": 1000}))
        wait_until(lambda: len(ledger.read_text().splitlines()) >= 200, within=120, what="200 items run")
        operator.restart()  # SIGKILL in the middle of the fan-out

        wait_phase(control_plane, namespace, "fan-1", "Succeeded", timeout=180)
        uid = kubectl_json(control_plane, "get", "execution/fan-1", "-n", namespace)["metadata"]["uid"]
        history = operator.history(uid)
        items = [e["data"]["item"] for e in history if e["kind"] == "ItemCompleted"]
        assert sorted(items) == list(range(1000)), "each item's outcome recorded exactly once"
        stored = kubectl_json(control_plane, "get", "execution/fan-1", "-n", namespace)["status"]
        assert len(json.dumps(stored).encode()) <= 16 * 1024, "the status stays small whatever the fan-out"
        assert [step["name"] for step in stored["steps"]] == ["parcels", "label"]
        assert operator.starts == 2
    finally:
        pool.stop_all()


def test_deleting_a_running_execution_cancels_its_step_on_the_worker(
    control_plane: ControlPlane,
    namespace: str,
    operator: OperatorProcess,
    start_worker: StartWorker,
    ledger: Path,
) -> None:
    start_worker()
    apply(control_plane, namespace, workflow("long", ["slow", "s2"]), execution("long-1", "long", {"hold_s": 60}))
    wait_for_slow_step(ledger)
    uid = kubectl_json(control_plane, "get", "execution/long-1", "-n", namespace)["metadata"]["uid"]

    control_plane.kubectl("delete", "execution/long-1", "-n", namespace, "--wait=false")

    wait_until(
        lambda: any(r["execution"] == uid and r["event"] == "cancelled" for r in read_ledger(ledger)),
        within=30,
        what="the worker to see the cancellation",
    )
    wait_until(
        lambda: control_plane.kubectl("get", "execution/long-1", "-n", namespace, check=False).returncode != 0,
        within=30,
        what="the Execution to be gone",
    )
    assert [e["kind"] for e in operator.history(uid)][-1] == "ExecutionCancelled"
    assert not any(r["execution"] == uid and r["step"] == "s2" for r in read_ledger(ledger))


def test_a_second_operator_waits_for_the_lease_and_takes_over_the_executions_when_the_first_stops(
    control_plane: ControlPlane,
    namespace: str,
    operator: OperatorProcess,
    start_worker: StartWorker,
    ledger: Path,
    tmp_path: Path,
) -> None:
    health_port = free_port()
    standby = OperatorProcess(
        database_url=operator.database_url,
        log_path=tmp_path / "standby.log",
        kubeconfig=operator.kubeconfig,
        identity="operator-standby",
        extra_args=(*operator.extra_args, "--health-address", f"127.0.0.1:{health_port}"),
    )
    standby.launch()
    try:
        # Wait for the standby to say so (a busy machine may take a while to get there)...
        wait_until(
            lambda: "waiting for lease" in standby.log_path.read_text(), what="the standby waiting for the lease"
        )
        wait_until(lambda: answers(health_port), what="the standby's health endpoint")
        # ...then check it still does not serve workers while the leader holds the lease.
        assert not standby.serving(timeout=4), "a standby must not serve workers while another holds the lease"
        assert probe(health_port, "/healthz") == (200, {"status": "ok", "role": "standby"})
        assert probe(health_port, "/readyz") == (503, {"ready": False, "role": "standby"})
        assert "cerebelum_leader 0.0" in scrape(health_port)

        start_worker()
        apply(
            control_plane,
            namespace,
            workflow("napper", ["s1", "nap", "s2"]),
            execution("nap-1", "napper", {"sleep_ms": 8000}),
        )
        wait_phase(control_plane, namespace, "nap-1", "Sleeping")

        operator.stop()  # a clean stop hands the lease over at once
        assert operator.process is not None and operator.process.returncode == 0, "a clean stop, no traceback"
        assert "Traceback" not in operator.log_path.read_text()
        standby.wait_ready(timeout=20)
        # Ready once caught up: the Execution it takes over is handled and its status written.
        wait_until(lambda: probe(health_port, "/readyz")[0] == 200, within=20, what="the new leader to catch up")
        assert probe(health_port, "/readyz") == (200, {"ready": True, "role": "leader"})
        worker_on_standby = WorkerProcess(
            script=WORKER_SCRIPT, address=standby.address, ledger=ledger, log_path=tmp_path / "worker-standby.log"
        ).start()
        try:
            wait_phase(control_plane, namespace, "nap-1", "Succeeded", timeout=40)
        finally:
            worker_on_standby.stop()
        metrics = scrape(health_port)
        assert "cerebelum_leader 1.0" in metrics
        assert 'cerebelum_executions_finished_total{phase="Succeeded"} 1.0' in metrics
        assert 'cerebelum_kube_api_writes_total{kind="status"}' in metrics
        runs = [(r["step"], r["pid"]) for r in read_ledger(ledger) if r["event"] == "run"]
        assert [step for step, _ in runs].count("s1") == 1
        assert worker_on_standby.process is not None
        assert ("s2", worker_on_standby.process.pid) in runs, "the standby, now leader, dispatched the rest"
    finally:
        standby.stop()


ROLE_LABEL = "cerebelum.io/role"


def create_pod(control_plane: ControlPlane, name: str, labels: dict[str, str] | None = None) -> None:
    """A Pod object for an operator process to label (no kubelet runs it: the object is all it needs)."""
    pod: Document = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "cerebelum", **(labels or {})}},
        "spec": {"containers": [{"name": "operator", "image": "cerebelum/operator:test"}]},
    }
    apply(control_plane, OPERATOR_NAMESPACE, pod)


def role_of(control_plane: ControlPlane, pod: str) -> str | None:
    labels = kubectl_json(control_plane, "get", f"pod/{pod}", "-n", OPERATOR_NAMESPACE)["metadata"].get("labels", {})
    role: str | None = labels.get(ROLE_LABEL)
    return role


def wait_role(control_plane: ControlPlane, pod: str, role: str) -> None:
    wait_until(lambda: role_of(control_plane, pod) == role, within=30, what=f"pod {pod} labelled {role}")


def audited_order(audit_log: Path, refs: dict[str, tuple[str, str]]) -> list[str]:
    """The writes to the objects `refs` names ({tag: (resource, name)}) in cerebelum-system, in order."""
    by_ref: dict[tuple[str | None, str | None], str] = {ref: tag for tag, ref in refs.items()}
    order = []
    for line in audit_log.read_text().splitlines():
        entry = json.loads(line)
        ref: dict[str, Any] = entry.get("objectRef") or {}
        if entry.get("stage") != "ResponseComplete" or ref.get("namespace") != OPERATOR_NAMESPACE:
            continue
        tag = by_ref.get((ref.get("resource"), ref.get("name")))
        if tag is not None and entry.get("verb") in ("create", "update", "patch"):
            order.append(f"{entry['verb']} {tag}")
    return order


def test_with_pod_role_labels_a_standby_is_ready_and_the_leader_label_follows_the_lease_across_a_hand_over(
    control_plane: ControlPlane,
    crds: list[str],
    operator_rbac: None,
    namespace: str,
    audit_log: Path,
    tmp_path: Path,
) -> None:
    """Two replicas as the chart runs them: both Ready, one labelled leader, which the gRPC Service selects."""
    lease = f"labels-{namespace}"
    first_pod, second_pod = f"{namespace}-first", f"{namespace}-second"
    create_pod(control_plane, first_pod)
    # As a container restarted after losing the Lease finds its pod: still labelled leader.
    create_pod(control_plane, second_pod, {ROLE_LABEL: "leader"})
    kubeconfig = service_account_kubeconfig(control_plane, tmp_path / "operator.kubeconfig")

    def replica(pod: str, health_port: int) -> OperatorProcess:
        return OperatorProcess(
            database_url=f"sqlite:///{tmp_path / 'operator.db'}",
            log_path=tmp_path / f"{pod}.log",
            kubeconfig=kubeconfig,
            identity=pod,
            extra_args=(
                *("--namespace", namespace, "--lease-name", lease, "--auth", "none"),
                *("--health-address", f"127.0.0.1:{health_port}", "--pod-role-label"),
            ),
        )

    first_port, second_port = free_port(), free_port()
    first, second = replica(first_pod, first_port), replica(second_pod, second_port)
    first.start()
    try:
        wait_role(control_plane, first_pod, "leader")
        wait_until(lambda: probe(first_port, "/readyz")[0] == 200, within=20, what="the leader to catch up")
        assert probe(first_port, "/readyz") == (200, {"ready": True, "role": "leader"})

        second.launch()
        wait_role(control_plane, second_pod, "standby")
        wait_until(lambda: probe(second_port, "/readyz")[0] == 200, within=10, what="the standby to be Ready")
        assert probe(second_port, "/readyz") == (200, {"ready": True, "role": "standby"})
        assert not second.serving(timeout=1), "a Ready standby still serves no worker"
        assert "cerebelum_leader 0.0" in scrape(second_port)
        assert role_of(control_plane, first_pod) == "leader"

        first.stop()  # a clean stop labels the pod standby, then hands the lease over
        assert first.process is not None and first.process.returncode == 0, first.log_path.read_text()[-3000:]
        assert role_of(control_plane, first_pod) == "standby"
        second.wait_ready(timeout=20)
        wait_role(control_plane, second_pod, "leader")
        wait_until(lambda: probe(second_port, "/readyz")[0] == 200, within=20, what="the new leader to catch up")
        assert probe(second_port, "/readyz") == (200, {"ready": True, "role": "leader"})
        assert 'cerebelum_kube_api_writes_total{kind="pod_role"} 2.0' in scrape(second_port)
    finally:
        first.stop()
        second.stop()
        print(
            f"--- first ---\n{first.log_path.read_text()[-4000:]}\n--- second ---\n{second.log_path.read_text()[-4000:]}"
        )
    assert role_of(control_plane, second_pod) == "standby"

    writes = audited_order(
        audit_log, {"lease": ("leases", lease), "first": ("pods", first_pod), "second": ("pods", second_pod)}
    )
    # first labels itself standby, leader, standby; second standby, leader, standby. The hand-over:
    # first's last label comes before it releases the lease, and second labels itself leader only
    # after it took the lease: never two pods labelled leader, with nothing else in between.
    assert writes.count("patch first") == 3 and writes.count("patch second") == 3, writes
    first_standby = [i for i, write in enumerate(writes) if write == "patch first"][2]
    second_leader = [i for i, write in enumerate(writes) if write == "patch second"][1]
    assert writes[first_standby + 1 : second_leader] == ["update lease", "update lease"], writes


def test_an_operator_told_to_label_a_pod_that_does_not_exist_exits_naming_it(
    control_plane: ControlPlane, crds: list[str], operator_rbac: None, namespace: str, tmp_path: Path
) -> None:
    lost = OperatorProcess(
        database_url=f"sqlite:///{tmp_path / 'lost.db'}",
        log_path=tmp_path / "lost.log",
        kubeconfig=service_account_kubeconfig(control_plane, tmp_path / "operator.kubeconfig"),
        identity=f"{namespace}-nowhere",
        extra_args=(
            "--namespace",
            namespace,
            "--lease-name",
            f"lost-{namespace}",
            "--auth",
            "none",
            "--pod-role-label",
        ),
    )
    lost.launch()
    assert lost.process is not None
    assert lost.process.wait(timeout=30) == 77
    log = lost.log_path.read_text()
    assert f"cannot label pod {OPERATOR_NAMESPACE}/{namespace}-nowhere" in log and "NotFound" in log
    assert "waiting for lease" not in log and "holding lease" not in log


def test_an_execution_created_before_its_workflow_waits_pending_and_starts_once_the_workflow_exists(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess, start_worker: StartWorker
) -> None:
    start_worker()
    apply(control_plane, namespace, execution("early-1", "late"))
    wait_phase(control_plane, namespace, "early-1", "Pending")
    accepted = {c["type"]: c for c in status(control_plane, namespace, "execution/early-1")["conditions"]}["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", "WorkflowNotFound"), accepted
    assert "late" in accepted["message"]

    apply(control_plane, namespace, workflow("late", ["s1"]))

    wait_phase(control_plane, namespace, "early-1", "Succeeded", timeout=40)
    accepted = {c["type"]: c for c in status(control_plane, namespace, "execution/early-1")["conditions"]}["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("True", "Started"), accepted


def test_an_operator_without_its_permissions_exits_naming_what_was_refused(
    control_plane: ControlPlane, namespace: str, operator_rbac: None, tmp_path: Path
) -> None:
    control_plane.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = control_plane.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    unprivileged = OperatorProcess(
        database_url=f"sqlite:///{tmp_path / 'nobody.db'}",
        log_path=tmp_path / "nobody.log",
        kubeconfig=token_kubeconfig(control_plane, tmp_path / "nobody.kubeconfig", token=token, user="nobody"),
        extra_args=("--namespace", namespace),
    )
    unprivileged.launch()
    assert unprivileged.process is not None
    assert unprivileged.process.wait(timeout=30) == 77
    log = unprivileged.log_path.read_text()
    assert "the Kubernetes API refused the operator (Forbidden)" in log
    assert f"system:serviceaccount:{namespace}:nobody" in log and "leases" in log
