"""The generated CRDs on a real kube-apiserver: accepted, and checking what they claim to check."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cerebelum_operator.kube.resources import (
    ChildStatus,
    Condition,
    ExecutionStatus,
    ParentStatus,
    PendingApprovalStatus,
    RecentEvent,
    StepStatus,
)
from tests.support.control_plane import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "provision" / "workflow.yaml"
REFERENCE = ROOT / "docs" / "crd-reference.md"

pytestmark = pytest.mark.usefixtures("crds")


def kubectl(control_plane: ControlPlane, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return control_plane.kubectl(*args, input=input, check=False)


def workflow(name: str, spec: str) -> str:
    return f"apiVersion: cerebelum.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: {name}\nspec: {spec}\n"


def execution(name: str, workflow_name: str = "provision-server", input_: str = "{region: eu}") -> str:
    return (
        "apiVersion: cerebelum.io/v1alpha1\nkind: Execution\n"
        f"metadata:\n  name: {name}\nspec:\n  workflow: {workflow_name}\n  input: {input_}\n"
    )


def get(control_plane: ControlPlane, namespace: str, resource: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(kubectl(control_plane, "get", resource, "-n", namespace, "-o", "json").stdout)
    return result


def table(control_plane: ControlPlane, namespace: str, resource: str) -> list[list[str]]:
    """`kubectl get` as rows of cells, cut at the header's column starts (empty cells stay empty)."""
    header, *lines = kubectl(control_plane, "get", resource, "-n", namespace).stdout.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [[line[start:end].strip() for start, end in bounds] for line in [header, *lines]]


# ------------------------------------------------------------------------------------- accepted


ALL_FIVE = [
    "approvals.cerebelum.io",
    "executions.cerebelum.io",
    "schedules.cerebelum.io",
    "signals.cerebelum.io",
    "workflows.cerebelum.io",
]


def test_the_five_crds_are_accepted_and_established(control_plane: ControlPlane, crds: list[str]) -> None:
    assert sorted(crds) == ALL_FIVE
    for name in crds:
        crd = json.loads(kubectl(control_plane, "get", "crd", name, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["NamesAccepted"] == "True", name
        assert conditions["Established"] == "True", name
    resources = kubectl(control_plane, "api-resources", "--api-group=cerebelum.io", "-o", "name").stdout.split()
    assert sorted(resources) == ALL_FIVE


def test_the_provision_example_passes_server_side_dry_run_with_the_crd_defaults_filled_in(
    control_plane: ControlPlane, namespace: str
) -> None:
    result = kubectl(control_plane, "apply", "--dry-run=server", "-n", namespace, "-f", str(EXAMPLE), "-o", "json")

    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout)["spec"]
    assert spec["defaults"]["lease"] == "30s"
    assert spec["defaults"]["retry"]["jitter"] == 0.1
    assert spec["steps"]["approve_go_live"]["approval"]["kind"] == "approval"
    assert spec["timeline"][1] == ["wait_for_ip", "reserve_dns"]
    assert spec["input"]["required"] == ["region"]


def test_every_example_in_the_crd_reference_passes_server_side_dry_run(
    control_plane: ControlPlane, namespace: str
) -> None:
    examples = re.findall(r"```yaml\n(.*?)```", REFERENCE.read_text(), flags=re.DOTALL)

    assert len(examples) == 5
    for example in examples:
        result = kubectl(control_plane, "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=example)
        assert result.returncode == 0, example + result.stderr


# ------------------------------------------------------------------------------------- refused


def test_a_workflow_whose_timeline_is_not_a_list_is_refused_naming_the_field(
    control_plane: ControlPlane, namespace: str
) -> None:
    result = kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=workflow("bad", "{timeline: 5}"))

    assert result.returncode != 0
    assert 'spec.timeline: Invalid value: "integer": spec.timeline in body must be of type array' in result.stderr


def test_a_timeline_entry_of_the_wrong_type_is_left_to_the_operator(
    control_plane: ControlPlane, namespace: str
) -> None:
    result = kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=workflow("loose", "{timeline: [5]}"))

    assert result.returncode == 0, result.stderr
    assert get(control_plane, namespace, "workflow/loose")["spec"]["timeline"] == [5]


def test_a_duration_without_a_unit_is_refused_by_the_pattern(control_plane: ControlPlane, namespace: str) -> None:
    bad = workflow("slow", "{timeline: [a], defaults: {timeout: '5'}}")

    result = kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=bad)

    assert result.returncode != 0
    assert "spec.defaults.timeout" in result.stderr
    assert "should match" in result.stderr


def test_an_unknown_field_under_a_strict_object_is_refused_by_kubectls_default_strict_validation(
    control_plane: ControlPlane, namespace: str
) -> None:
    typo = workflow("typo", "{timeline: [a], defaults: {retry: {maxAttemps: 3}}}")

    result = kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=typo)

    assert result.returncode != 0
    assert 'strict decoding error: unknown field "spec.defaults.retry.maxAttemps"' in result.stderr


def test_without_strict_validation_an_unknown_field_is_pruned_with_a_warning(
    control_plane: ControlPlane, namespace: str
) -> None:
    typo = workflow("typo", "{timeline: [a], defaults: {retry: {maxAttemps: 3}}}")

    result = kubectl(control_plane, "apply", "--validate=warn", "-n", namespace, "-f", "-", input=typo)

    assert result.returncode == 0, result.stderr
    assert 'unknown field "spec.defaults.retry.maxAttemps"' in result.stderr
    retry = get(control_plane, namespace, "workflow/typo")["spec"]["defaults"]["retry"]
    assert "maxAttemps" not in retry
    assert retry["maxAttempts"] == 3  # the CRD's default, not the typo


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{then: fail, goto: b, when: 'true'}", "a diverge rule needs exactly one of 'then'"),
        ("{when: 'true'}", "a diverge rule needs exactly one of 'then'"),
        ("{then: fail, match: {error: {type: X}, result: {ok: true}}}", "match either an error or a result, not both"),
        ("{then: stop, when: 'true'}", "must be one of: retry, fail, continue"),
    ],
)
def test_a_malformed_diverge_rule_is_refused_by_a_cel_rule(
    control_plane: ControlPlane, namespace: str, rule: str, message: str
) -> None:
    bad = workflow("diverging", f"{{timeline: [a, b], diverge: {{a: [{rule}]}}}}")

    result = kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=bad)

    assert result.returncode != 0
    assert "spec.diverge[a][0]" in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{when: 'true'}", "a branch rule needs exactly one of 'goto' or 'then'"),
        ("{when: 'true', goto: b, then: succeed}", "a branch rule needs exactly one of 'goto' or 'then'"),
        ("{when: 'true', then: retry}", "must be one of: succeed, fail"),
    ],
)
def test_a_malformed_branch_rule_is_refused_by_a_cel_rule(
    control_plane: ControlPlane, namespace: str, rule: str, message: str
) -> None:
    bad = workflow("branching", f"{{timeline: [a, b], branch: {{a: [{rule}]}}}}")

    result = kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=bad)

    assert result.returncode != 0
    assert "spec.branch[a][0]" in result.stderr
    assert message in result.stderr


def test_an_execution_whose_spec_is_changed_is_refused_but_its_labels_may_change(
    control_plane: ControlPlane, namespace: str
) -> None:
    created = kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=execution("run-1"))
    assert created.returncode == 0, created.stderr

    changed = kubectl(
        control_plane, "apply", "-n", namespace, "-f", "-", input=execution("run-1", input_="{region: us}")
    )
    labelled = kubectl(control_plane, "label", "-n", namespace, "execution/run-1", "team=infra")

    assert changed.returncode != 0
    assert "spec is immutable: create a new Execution" in changed.stderr
    assert labelled.returncode == 0, labelled.stderr
    assert get(control_plane, namespace, "execution/run-1")["spec"]["input"] == {"region": "eu"}


def test_an_approval_whose_decision_is_changed_is_refused(control_plane: ControlPlane, namespace: str) -> None:
    def approval(decision: str) -> str:
        return (
            "apiVersion: cerebelum.io/v1alpha1\nkind: Approval\nmetadata:\n  name: go\n"
            f"spec:\n  execution: run-1\n  step: approve\n  decision: {decision}\n"
        )

    created = kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=approval("Approve"))
    changed = kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=approval("Reject"))

    assert created.returncode == 0, created.stderr
    assert changed.returncode != 0
    assert "spec is immutable: create a new Approval" in changed.stderr


# --------------------------------------------------------------------------- status and columns


def full_execution_status() -> dict[str, Any]:
    """Every ExecutionStatus field set, as the operator's patches spell them."""
    status = ExecutionStatus(
        execution_id="3f2c",
        run=2,
        run_id="3f2c:run-2",
        phase="WaitingForApproval",
        current_step="approve_go_live",
        started_at="2026-01-01T00:00:00.000Z",
        finished_at="2026-01-01T00:05:00.000Z",
        wake_at="2026-01-02T00:00:00.000Z",
        pending_approval=PendingApprovalStatus(
            step="approve_go_live", requested_at="2026-01-01T00:01:00.000Z", timeout_at="2026-01-04T00:01:00.000Z"
        ),
        steps=[
            StepStatus(
                name="create_server",
                phase="Failed",
                attempts=2,
                started_at="2026-01-01T00:00:00.000Z",
                finished_at="2026-01-01T00:00:01.000Z",
                error="QuotaExceeded",
                previous_attempt_error="Timeout: no heartbeat for 30s",
                progress='{"done": 3, "of": 10}',
            )
        ],
        steps_omitted=3,
        recent_events=[RecentEvent(seq=7, at="2026-01-01T00:00:01.000Z", type="StepFailed", step="create_server")],
        event_count=7,
        output={"server": "s-1", "tags": ["a", 1, None, {"deep": True}]},
        output_truncated=False,
        output_bytes=52,
        error="boom",
        workflow_task_error="NonDeterminism: WorkflowTaskCompleted (seq 4) recorded step 'a' as command 1",
        parent=ParentStatus(name="orders-1", execution_id="p1", step="charge"),
        children=[
            ChildStatus(
                step="notify",
                name="run-1-notify-0a1b2c3d",
                execution_id="3f2c:run-2:notify:1.1",
                workflow="notifier",
                phase="Running",
            )
        ],
        child_count=3,
        children_omitted=2,
        conditions=[
            Condition(
                type="Succeeded",
                status="Unknown",
                reason="WaitingForApproval",
                message="",
                last_transition_time="2026-01-01T00:00:00.000Z",
                observed_generation=1,
            )
        ],
        observed_generation=1,
    )
    dumped = status.model_dump(by_alias=True, mode="json")
    unset = _null_paths(dumped)
    assert not unset, f"set these fields too (a merge patch deletes a null, so the test would not see them): {unset}"
    return dumped


def _null_paths(value: Any, path: str = "status") -> list[str]:
    """Where a dumped status still holds null: a field added to the model but not to this test."""
    if value is None:
        return [path]
    if path == "status.output":  # the user's own JSON, where a null is data
        return []
    if isinstance(value, dict):
        return [hit for key, item in value.items() for hit in _null_paths(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [hit for index, item in enumerate(value) for hit in _null_paths(item, f"{path}[{index}]")]
    return []


def test_an_execution_status_with_every_field_set_is_stored_unpruned(
    control_plane: ControlPlane, namespace: str
) -> None:
    kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=execution("full"))
    status = full_execution_status()

    patched = kubectl(
        control_plane,
        "patch",
        "-n",
        namespace,
        "execution/full",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )

    assert patched.returncode == 0, patched.stderr
    assert get(control_plane, namespace, "execution/full")["status"] == status


def test_optional_status_fields_may_hold_null(control_plane: ControlPlane, namespace: str) -> None:
    kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=execution("nulls"))
    nulls = {"phase": None, "currentStep": None, "output": None, "wakeAt": None, "pendingApproval": None}
    ops = [{"op": "add", "path": "/status", "value": nulls}]

    patched = kubectl(
        control_plane,
        "patch",
        "-n",
        namespace,
        "execution/nulls",
        "--subresource=status",
        "--type=json",
        "-p",
        json.dumps(ops),
    )

    assert patched.returncode == 0, patched.stderr
    assert get(control_plane, namespace, "execution/nulls")["status"] == {**nulls, "eventCount": 0}


def test_an_approval_phase_may_be_null_or_a_known_phase_but_nothing_else(
    control_plane: ControlPlane, namespace: str
) -> None:
    kubectl(
        control_plane,
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input="apiVersion: cerebelum.io/v1alpha1\nkind: Approval\nmetadata: {name: go}\nspec: {execution: e, step: s}\n",
    )

    def set_phase(value: str | None) -> subprocess.CompletedProcess[str]:
        ops = [{"op": "add", "path": "/status", "value": {"phase": value}}]
        return kubectl(
            control_plane,
            "patch",
            "-n",
            namespace,
            "approval/go",
            "--subresource=status",
            "--type=json",
            "-p",
            json.dumps(ops),
        )

    unset, applied, bogus = set_phase(None), set_phase("Applied"), set_phase("Done")

    assert unset.returncode == 0, unset.stderr
    assert applied.returncode == 0, applied.stderr
    assert bogus.returncode != 0
    assert "must be one of: Applied, Refused" in bogus.stderr
    rows = table(control_plane, namespace, "approvals")
    assert rows[0] == ["NAME", "EXECUTION", "STEP", "DECISION", "APPROVER", "PHASE", "AGE"]
    # Empty, or the admin when an earlier test installed the chart's admission policy.
    approver = get(control_plane, namespace, "approval/go")["spec"].get("approver", "")
    assert rows[1][:6] == ["go", "e", "s", "Approve", approver, "Applied"]


def test_kubectl_get_executions_shows_phase_workflow_step_and_age_after_a_status_patch(
    control_plane: ControlPlane, namespace: str
) -> None:
    kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=execution("run-2"))
    status = {"status": {"phase": "Running", "currentStep": "create_server"}}

    patched = kubectl(
        control_plane,
        "patch",
        "-n",
        namespace,
        "execution/run-2",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    rows = table(control_plane, namespace, "executions")

    assert patched.returncode == 0, patched.stderr
    assert rows[0] == ["NAME", "PHASE", "WORKFLOW", "STEP", "AGE"]
    assert rows[1][:4] == ["run-2", "Running", "provision-server", "create_server"]
    assert re.fullmatch(r"\d+s", rows[1][4])


def test_kubectl_get_workflows_shows_the_ready_condition(control_plane: ControlPlane, namespace: str) -> None:
    kubectl(control_plane, "apply", "-n", namespace, "-f", str(EXAMPLE))
    ready = Condition(type="Ready", status="False", reason="Invalid", last_transition_time="2026-01-01T00:00:00Z")
    status = {"status": {"conditions": [ready.model_dump(by_alias=True, mode="json")]}}

    patched = kubectl(
        control_plane,
        "patch",
        "-n",
        namespace,
        "workflow/provision-server",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    rows = table(control_plane, namespace, "wf")

    assert patched.returncode == 0, patched.stderr
    assert rows[0] == ["NAME", "READY", "REASON", "AGE"]
    assert rows[1][:3] == ["provision-server", "False", "Invalid"]


def test_the_cerebelum_category_lists_all_four_kinds(control_plane: ControlPlane, namespace: str) -> None:
    kubectl(control_plane, "apply", "-n", namespace, "-f", str(EXAMPLE))
    kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=execution("run-3"))
    approval = (
        "apiVersion: cerebelum.io/v1alpha1\nkind: Approval\nmetadata: {name: go}\nspec: {execution: run-3, step: s}\n"
    )
    kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=approval)
    kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=signal("ping", "run-3"))

    names = kubectl(control_plane, "get", "cerebelum", "-n", namespace, "-o", "name").stdout.split()

    assert sorted(names) == [
        "approval.cerebelum.io/go",
        "execution.cerebelum.io/run-3",
        "signal.cerebelum.io/ping",
        "workflow.cerebelum.io/provision-server",
    ]


def signal(name: str, execution_name: str, signal_name: str = "ready") -> str:
    return (
        f"apiVersion: cerebelum.io/v1alpha1\nkind: Signal\nmetadata: {{name: {name}}}\n"
        f"spec: {{execution: {json.dumps(execution_name)}, name: {json.dumps(signal_name)}, data: {{n: 1}}}}\n"
    )


def test_a_signal_naming_a_path_or_a_bad_signal_name_is_refused_and_its_spec_is_immutable(
    control_plane: ControlPlane, namespace: str
) -> None:
    path = kubectl(control_plane, "create", "-n", namespace, "-f", "-", input=signal("a", "../../b/executions/x"))
    bad_name = kubectl(control_plane, "create", "-n", namespace, "-f", "-", input=signal("b", "x", "no spaces"))
    created = kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=signal("c", "x"))
    changed = kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=signal("c", "x", "other"))

    assert path.returncode != 0 and "spec.execution" in path.stderr
    assert bad_name.returncode != 0 and "spec.name" in bad_name.stderr
    assert created.returncode == 0, created.stderr
    assert changed.returncode != 0 and "spec is immutable: create a new Signal" in changed.stderr


def test_a_signal_phase_may_be_delivered_or_refused_and_kubectl_get_shows_it(
    control_plane: ControlPlane, namespace: str
) -> None:
    kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=signal("go", "run-9"))

    def set_phase(value: str) -> subprocess.CompletedProcess[str]:
        status = {"status": {"phase": value, "runId": "u:run-2", "message": "delivered"}}
        return kubectl(
            control_plane,
            "patch",
            "-n",
            namespace,
            "signal/go",
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(status),
        )

    bogus, delivered = set_phase("Done"), set_phase("Delivered")

    assert bogus.returncode != 0 and "must be one of: Delivered, Refused" in bogus.stderr
    assert delivered.returncode == 0, delivered.stderr
    rows = table(control_plane, namespace, "signals")
    assert rows[0] == ["NAME", "EXECUTION", "SIGNAL", "SENDER", "PHASE", "AGE"]
    sender = get(control_plane, namespace, "signal/go")["spec"].get("sender", "")
    assert rows[1][:5] == ["go", "run-9", "ready", sender, "Delivered"]


def test_a_workflow_using_every_construct_of_the_language_is_stored_as_written(
    control_plane: ControlPlane, namespace: str
) -> None:
    spec = {
        "timeline": ["reserve", ["ship-eu", "ship-us", "report"], "wait", "label", "pay"],
        "timeout": "1h",
        "vars": {"tries": 0, "seen": {"nested": [1, "two", None, True]}},
        "finally": ["notify"],
        "steps": {
            "reserve": {"compensate": "release", "set": {"tries": "vars.tries + 1"}},
            "ship-eu": {"when": "'eu' in input.regions", "function": "ship", "args": {"region": "'eu'"}},
            "ship-us": {"when": "'us' in input.regions", "function": "ship", "args": {"region": "'us'"}},
            "report": {"dependsOn": ["ship-eu", "ship-us"], "when": "phases['ship-eu'] != 'Failed'"},
            "wait": {"timer": {"until": "timestamp(input.payAt)"}},
            "label": {
                "forEach": {"items": "input.parcels", "concurrency": 20, "onItemFailure": "collect"},
                "args": {"parcel": "item", "position": "index"},
            },
            "release": {"retry": {"maxAttempts": 5}},
        },
        "diverge": {
            "pay": [{"match": {"error": {"type": "Timeout"}}, "afterRetries": True, "then": "fail", "message": "no"}]
        },
        "branch": {"reserve": [{"when": "result.cached", "then": "succeed"}]},
    }
    document = json.dumps(
        {"apiVersion": "cerebelum.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "everything"}, "spec": spec}
    )

    applied = kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=document)

    assert applied.returncode == 0, applied.stderr
    stored = get(control_plane, namespace, "workflow/everything")["spec"]
    for key, value in spec.items():
        if key not in ("steps", "diverge"):
            assert stored[key] == value, key
    assert stored["steps"]["report"]["dependsOn"] == ["ship-eu", "ship-us"]
    assert stored["steps"]["ship-eu"]["args"] == {"region": "'eu'"}
    assert stored["diverge"]["pay"][0]["afterRetries"] is True
    assert stored["steps"]["label"]["forEach"] == {
        "items": "input.parcels",
        "concurrency": 20,
        "onItemFailure": "collect",
    }
