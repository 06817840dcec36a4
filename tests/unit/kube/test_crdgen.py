"""The CRD generator: structural schemas from the pydantic models, and the committed CRDs match it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

from cerebelum_operator.kube import resources
from cerebelum_operator.kube.crdgen import PRESERVE, build_crds, structural_schema
from cerebelum_operator.model.durations import DURATION_PATTERN
from cerebelum_operator.model.spec import WorkflowSpec

ROOT = Path(__file__).resolve().parents[3]
JUNCTORS = ("anyOf", "oneOf", "allOf", "not")


def crds_by_kind() -> dict[str, dict[str, Any]]:
    return {crd["spec"]["names"]["kind"]: crd for crd in build_crds()}


def version(kind: str) -> dict[str, Any]:
    versions: list[dict[str, Any]] = crds_by_kind()[kind]["spec"]["versions"]
    assert len(versions) == 1
    return versions[0]


def schema_of(kind: str, part: str) -> dict[str, Any]:
    root: dict[str, Any] = version(kind)["schema"]["openAPIV3Schema"]
    schema: dict[str, Any] = root["properties"][part]
    return schema


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path: properties, map values and array items."""
    yield path or "<root>", schema
    for name, child in schema.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}.*")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")


def structural_problems(schema: dict[str, Any]) -> list[str]:
    """What keeps a schema from being structural in the apiserver's sense (empty when it is)."""
    problems = []
    for path, node in nodes(schema):
        untyped_ok = node.get(PRESERVE) is True or node.get("x-kubernetes-int-or-string") is True
        if "type" not in node and not untyped_ok:
            problems.append(f"{path}: no type")
        for key in ("$ref", "$defs", "title"):
            if key in node:
                problems.append(f"{path}: {key}")
        for junctor in JUNCTORS:
            for option in node.get(junctor, []) if isinstance(node.get(junctor), list) else [node.get(junctor)]:
                if isinstance(option, dict) and {"type", "nullable", "default", "description"} & option.keys():
                    problems.append(f"{path}: {junctor} specifies {sorted(option)}")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: both properties and additionalProperties")
        if isinstance(node.get("additionalProperties"), bool):
            problems.append(f"{path}: additionalProperties is a boolean")
    return problems


# ------------------------------------------------------------------------------------ structural


def test_the_structural_check_catches_pydantics_raw_schema() -> None:
    problems = structural_problems(WorkflowSpec.model_json_schema(by_alias=True, mode="validation"))

    assert any(p.endswith(": title") for p in problems)
    assert any("no type" in p for p in problems)


@pytest.mark.parametrize("kind", ["Workflow", "Execution", "Approval", "Signal"])
def test_every_schema_node_of_each_crd_is_structural(kind: str) -> None:
    schema = version(kind)["schema"]["openAPIV3Schema"]

    visited = list(nodes(schema))

    assert len(visited) > 15, "the walk reached the nested schemas"
    assert structural_problems(schema) == []


def test_a_timeline_entry_is_left_to_the_operator_because_step_or_list_has_no_structural_form() -> None:
    timeline = schema_of("Workflow", "spec")["properties"]["timeline"]

    assert timeline["type"] == "array"
    assert "minItems" not in timeline, "a code workflow has none: the operator's compile asks for one or `code`"
    assert timeline["items"] == {PRESERVE: True}


def test_any_values_keep_their_content_and_accept_null() -> None:
    execution_input = schema_of("Execution", "spec")["properties"]["input"]
    output = schema_of("Execution", "status")["properties"]["output"]

    for node in (execution_input, output):
        assert "type" not in node
        assert node[PRESERVE] is True
        assert node["nullable"] is True


def test_a_json_object_of_anything_stays_an_object_whose_content_is_kept() -> None:
    workflow_input = schema_of("Workflow", "spec")["properties"]["input"]

    assert workflow_input["type"] == "object"
    assert workflow_input[PRESERVE] is True
    assert "additionalProperties" not in workflow_input


def test_a_dict_of_models_becomes_an_object_with_additional_properties() -> None:
    steps = schema_of("Workflow", "spec")["properties"]["steps"]

    assert steps["type"] == "object"
    assert steps["additionalProperties"]["type"] == "object"
    assert "heartbeatTimeout" in steps["additionalProperties"]["properties"]


def test_the_duration_pattern_survives_the_validator_chain() -> None:
    defaults = schema_of("Workflow", "spec")["properties"]["defaults"]["properties"]

    assert defaults["timeout"]["pattern"] == DURATION_PATTERN
    assert defaults["retry"]["properties"]["maxInterval"]["pattern"] == DURATION_PATTERN


def test_defaults_bounds_and_descriptions_are_kept_and_null_defaults_dropped() -> None:
    spec = schema_of("Workflow", "spec")["properties"]
    retry = spec["defaults"]["properties"]["retry"]["properties"]

    assert spec["taskQueue"]["default"] == "default"
    assert retry["maxAttempts"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 3}
    assert spec["output"]["description"] == "CEL over input and steps."
    assert "default" not in spec["output"]
    assert spec["output"]["nullable"] is True


def test_a_required_literal_becomes_an_enum() -> None:
    decision = schema_of("Approval", "spec")["properties"]["decision"]

    assert decision == {"type": "string", "enum": ["Approve", "Reject"], "default": "Approve"}


def test_an_optional_literal_becomes_a_cel_rule_because_the_apiserver_refuses_null_against_an_enum() -> None:
    phase = schema_of("Approval", "status")["properties"]["phase"]

    assert "enum" not in phase
    assert phase["nullable"] is True
    assert phase["maxLength"] == len("Applied")
    assert phase["x-kubernetes-validations"] == [
        {"rule": 'self in ["Applied", "Refused"]', "message": "must be one of: Applied, Refused"}
    ]


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("Workflow", resources.WorkflowStatus),
        ("Execution", resources.ExecutionStatus),
        ("Approval", resources.ApprovalStatus),
        ("Signal", resources.SignalStatus),
    ],
)
def test_each_status_schema_has_every_field_of_its_model_and_the_optional_ones_are_nullable(
    kind: str, model: type[BaseModel]
) -> None:
    properties = schema_of(kind, "status")["properties"]

    for name, field in model.model_fields.items():
        alias = field.alias or name
        assert alias in properties, f"{kind} status lacks {alias}"
        optional = field.default is None and not field.is_required()
        assert properties[alias].get("nullable", False) is optional, f"{kind} status.{alias}"


def test_conditions_are_a_list_map_keyed_by_type() -> None:
    for kind in ("Workflow", "Execution", "Approval", "Signal"):
        conditions = schema_of(kind, "status")["properties"]["conditions"]

        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        assert "type" in conditions["items"]["required"]


def test_json_schema_keywords_without_a_crd_form_raise_instead_of_vanishing() -> None:
    class Tagged(BaseModel):
        tags: set[str] = Field(default_factory=set)

    with pytest.raises(ValueError, match=r"Tagged\.tags: .*uniqueItems"):
        structural_schema(Tagged)


def test_a_union_of_two_models_is_left_unchecked_rather_than_half_checked() -> None:
    class A(BaseModel):
        a: int

    class B(BaseModel):
        b: str

    class Either(BaseModel):
        value: A | B

    schema = structural_schema(Either)

    assert schema["properties"]["value"] == {PRESERVE: True}
    assert schema["required"] == ["value"]


# ------------------------------------------------------------------------------ CRD objects, files


def test_the_five_crds_are_namespaced_with_one_served_stored_version_a_status_subresource_and_a_category() -> None:
    crds = crds_by_kind()

    assert sorted(crds) == ["Approval", "Execution", "Schedule", "Signal", "Workflow"]
    for kind, crd in crds.items():
        names = crd["spec"]["names"]
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["metadata"]["name"] == f"{names['plural']}.cerebelum.io"
        assert crd["spec"]["scope"] == "Namespaced"
        assert names["categories"] == ["cerebelum"]
        assert names["plural"] == kind.lower() + "s"
        served = version(kind)
        assert (served["name"], served["served"], served["storage"]) == ("v1alpha1", True, True)
        assert served["subresources"] == {"status": {}}
        assert served["schema"]["openAPIV3Schema"]["required"] == ["spec"]
    assert crds["Workflow"]["spec"]["names"]["shortNames"] == ["wf"]
    assert crds["Execution"]["spec"]["names"]["shortNames"] == ["exec"]
    assert "shortNames" not in crds["Approval"]["spec"]["names"]
    assert "shortNames" not in crds["Signal"]["spec"]["names"]


def columns(kind: str, *, wide: bool = False) -> list[tuple[str, str, str]]:
    """The columns `kubectl get` shows; with `wide`, those only `-o wide` adds (priority 1)."""
    return [
        (c["name"], c["type"], c["jsonPath"])
        for c in version(kind)["additionalPrinterColumns"]
        if c.get("priority", 0) == (1 if wide else 0)
    ]


AGE = ("Age", "date", ".metadata.creationTimestamp")


def test_a_workflow_shows_ready_reason_and_age() -> None:
    assert columns("Workflow") == [
        ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
        ("Reason", "string", '.status.conditions[?(@.type=="Ready")].reason'),
        AGE,
    ]


def test_a_workflow_shows_its_steps_generations_and_ready_message_with_o_wide() -> None:
    assert columns("Workflow", wide=True) == [
        ("Steps", "integer", ".status.steps"),
        ("Generation", "integer", ".metadata.generation"),
        ("Compiled", "integer", ".status.observedGeneration"),
        ("Message", "string", '.status.conditions[?(@.type=="Ready")].message'),
    ]


def test_an_execution_shows_phase_workflow_step_and_age() -> None:
    assert columns("Execution") == [
        ("Phase", "string", ".status.phase"),
        ("Workflow", "string", ".spec.workflow"),
        ("Step", "string", ".status.currentStep"),
        AGE,
    ]


def test_an_execution_shows_when_it_started_and_finished_its_events_id_run_parent_and_message_with_o_wide() -> None:
    assert columns("Execution", wide=True) == [
        ("Started", "date", ".status.startedAt"),
        ("Finished", "date", ".status.finishedAt"),
        ("Events", "integer", ".status.eventCount"),
        ("Execution-ID", "string", ".status.executionId"),
        ("Run", "integer", ".status.run"),
        ("Parent", "string", ".status.parent.name"),
        ("Message", "string", '.status.conditions[?(@.type=="Succeeded")].message'),
    ]


def test_an_approval_shows_execution_step_decision_approver_phase_and_age() -> None:
    assert columns("Approval") == [
        ("Execution", "string", ".spec.execution"),
        ("Step", "string", ".spec.step"),
        ("Decision", "string", ".spec.decision"),
        ("Approver", "string", ".spec.approver"),
        ("Phase", "string", ".status.phase"),
        AGE,
    ]
    assert columns("Approval", wide=True) == [("Message", "string", ".status.message")]


def test_a_signal_shows_execution_name_sender_phase_and_age_and_the_run_it_reached_with_o_wide() -> None:
    assert columns("Signal") == [
        ("Execution", "string", ".spec.execution"),
        ("Signal", "string", ".spec.name"),
        ("Sender", "string", ".spec.sender"),
        ("Phase", "string", ".status.phase"),
        AGE,
    ]
    assert columns("Signal", wide=True) == [
        ("Run-ID", "string", ".status.runId"),
        ("Message", "string", ".status.message"),
    ]


def test_every_wide_column_comes_after_the_default_ones() -> None:
    for kind in ("Workflow", "Execution", "Approval", "Signal"):
        priorities = [c.get("priority", 0) for c in version(kind)["additionalPrinterColumns"]]
        assert priorities == sorted(priorities) and priorities[-1] == 1, kind


@pytest.mark.parametrize(
    ("kind", "message"), [("Execution", "Execution"), ("Approval", "Approval"), ("Signal", "Signal")]
)
def test_execution_approval_and_signal_specs_are_immutable_by_a_transition_rule(kind: str, message: str) -> None:
    rules = schema_of(kind, "spec")["x-kubernetes-validations"]

    assert rules == [{"rule": "self == oldSelf", "message": f"spec is immutable: create a new {message}"}]


def test_a_workflow_checks_its_diverge_rules_in_cel_within_bounds_the_cost_estimator_accepts() -> None:
    diverge = schema_of("Workflow", "spec")["properties"]["diverge"]
    rule = diverge["additionalProperties"]["items"]

    assert diverge["maxProperties"] == 1000
    assert diverge["additionalProperties"]["maxItems"] == 100
    assert [r["rule"] for r in rule["x-kubernetes-validations"]] == ["has(self.then) != has(self.goto)"]
    assert [r["rule"] for r in rule["properties"]["match"]["x-kubernetes-validations"]] == [
        "!(has(self.error) && has(self.result))"
    ]


def test_the_committed_crd_files_equal_build_crds_and_say_they_are_generated() -> None:
    committed = sorted((ROOT / "crds").glob("*.yaml"))

    assert [p.name for p in committed] == [
        "approvals.cerebelum.io.yaml",
        "executions.cerebelum.io.yaml",
        "schedules.cerebelum.io.yaml",
        "signals.cerebelum.io.yaml",
        "workflows.cerebelum.io.yaml",
    ]
    for crd in build_crds():
        path = ROOT / "crds" / f"{crd['metadata']['name']}.yaml"
        text = path.read_text()
        assert text.startswith("# Generated by scripts/gen_crds.py from ")
        assert "do not edit" in text.splitlines()[0]
        assert yaml.safe_load(text) == crd, f"{path.name} is stale: run scripts/gen_crds.py"


def test_the_check_names_each_stale_file_and_fails(tmp_path: Path) -> None:
    for rel in ("scripts/gen_crds.py", "docs/crd-reference.md", "examples/provision/workflow.yaml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((ROOT / rel).read_text())
    for directory in ("crds", "charts/cerebelum/files/crds"):
        (tmp_path / directory).mkdir(parents=True)
        for path in (ROOT / directory).glob("*.yaml"):
            (tmp_path / directory / path.name).write_text(path.read_text())
    check = [sys.executable, str(tmp_path / "scripts" / "gen_crds.py"), "--check"]

    fresh = subprocess.run(check, capture_output=True, text=True)
    stale_crd = tmp_path / "crds" / "workflows.cerebelum.io.yaml"
    stale_crd.write_text(stale_crd.read_text().replace("shortNames:\n    - wf", "shortNames:\n    - wfl"))
    (tmp_path / "docs" / "crd-reference.md").write_text("old\n")
    stale = subprocess.run(check, capture_output=True, text=True)

    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert stale.returncode == 1
    assert stale.stdout.splitlines() == [
        "crds/workflows.cerebelum.io.yaml is stale: run scripts/gen_crds.py",
        "docs/crd-reference.md is stale: run scripts/gen_crds.py",
    ]


def test_the_generator_imports_no_kubernetes_client() -> None:
    code = (
        "import sys, cerebelum_operator.kube.crdgen\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'kopf', 'kubernetes', 'kubernetes_asyncio', "
        "'lightkube', 'grpc', 'yaml'}))"
    )

    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert loaded.strip() == "[]"


@pytest.mark.parametrize("kind", ["Workflow", "Execution", "Approval", "Signal"])
def test_every_string_a_user_writes_in_a_spec_has_a_length_limit(kind: str) -> None:
    """Issue 13: every string the engine stores has a limit, and the API server enforces it first."""
    unbounded = [
        path
        for path, node in nodes(schema_of(kind, "spec"))
        if node.get("type") == "string" and "maxLength" not in node and "enum" not in node
    ]
    assert unbounded == []
