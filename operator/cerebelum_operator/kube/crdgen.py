"""Build the CustomResourceDefinitions from the pydantic models, so the CRDs cannot drift from the code.

Kubernetes wants *structural* OpenAPI v3 schemas: every node typed, no `$ref`, no typed
alternatives. Pydantic's JSON Schema is close but not that, so `structural_schema` rewrites it.
Where a model allows more than a structural schema can say (a timeline entry that is a step or a
list of steps, `Any` values) the node keeps its content unchecked and the operator's own
`compile_workflow` checks it fully. Unknown JSON Schema keywords raise instead of vanishing, so a
new model feature cannot silently loosen a CRD.

Only pydantic and the standard library here: `scripts/gen_crds.py` renders the YAML.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from ..engine.schedule_spec import ScheduleSpec
from ..model.spec import WorkflowSpec
from .names import MAX_NAME_LENGTH, NAME_PATTERN
from .resources import (
    GROUP,
    VERSION,
    ApprovalSpec,
    ApprovalStatus,
    ExecutionSpec,
    ExecutionStatus,
    ScheduleStatus,
    SignalSpec,
    SignalStatus,
    WorkflowStatus,
)

__all__ = [
    "MAX_DIVERGE_RULES",
    "MAX_DIVERGE_STEPS",
    "PRESERVE",
    "build_crds",
    "structural_schema",
]

PRESERVE = "x-kubernetes-preserve-unknown-fields"

#: CRD-only bounds on `diverge` and `branch`: without them the apiserver's CEL cost estimate for
#: the per-rule checks (unbounded map of unbounded lists) exceeds its budget and the CRD is refused.
MAX_DIVERGE_STEPS = 1000
MAX_DIVERGE_RULES = 100

_SCALARS = frozenset({"string", "integer", "number", "boolean"})
# Copied as they are onto a typed node (structural schemas allow them there).
_KEPT = (
    "description",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
)
# Formats that both JSON Schema and the apiserver know.
_FORMATS = frozenset({"date-time", "date", "uuid", "email", "uri", "byte", "password"})
_ORDER = (
    "type",
    "description",
    "nullable",
    "format",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "default",
    PRESERVE,
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
    "required",
    "properties",
    "additionalProperties",
    "items",
)
_HANDLED = frozenset(
    {
        *_KEPT,
        "type",
        "title",
        "default",
        "enum",
        "const",
        "format",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "anyOf",
        "allOf",
        "$ref",
        "exclusiveMinimum",
        "exclusiveMaximum",
    }
)


class _ChainConstraints(GenerateJsonSchema):
    """Keep every step's constraints of a validator chain on one type.

    `Annotated[str, AfterValidator(f), Field(pattern=...)]` (the spec's `Duration`) compiles to a
    chain whose first step alone pydantic reports, dropping the pattern the second step enforces.
    """

    def chain_schema(self, schema: core_schema.ChainSchema) -> JsonSchemaValue:
        if self.mode != "validation":
            return super().chain_schema(schema)
        first = self.generate_inner(schema["steps"][0])
        merged = dict(first)
        for step in schema["steps"][1:]:
            more = self.generate_inner(step)
            if "$ref" in merged or "$ref" in more or more.get("type") != merged.get("type"):
                return first
            if any(key in merged and merged[key] != value for key, value in more.items()):
                return first
            merged.update(more)
        return merged


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's validation schema (camelCase) as a structural CRD schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_ChainConstraints)
    defs: Mapping[str, Any] = raw.pop("$defs", {})
    return _tidy(_convert(raw, defs, model.__name__))


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Inline `$ref` (bare or as a one-item `allOf`); the referring node's own keys win."""
    node = dict(node)
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1 or set(parts[0]) != {"$ref"}:
            raise ValueError(f"{path}: allOf other than a single $ref is not supported")
        node["$ref"] = parts[0]["$ref"]
    ref = node.pop("$ref", None)
    if ref is None:
        return node
    prefix = "#/$defs/"
    if not ref.startswith(prefix) or ref[len(prefix) :] not in defs:
        raise ValueError(f"{path}: unresolvable $ref {ref!r}")
    target = _resolve(defs[ref[len(prefix) :]], defs, path)
    return {**copy.deepcopy(target), **node}


def _convert(node: Mapping[str, Any], defs: Mapping[str, Any], path: str) -> dict[str, Any]:
    node = _resolve(node, defs, path)
    # Pydantic's `Any` is `{}` (plus title, description, default): null is one of its values.
    nullable = not node.keys() & {"type", "enum", "const", "anyOf"}
    if "anyOf" in node:
        alternatives = node.pop("anyOf")
        options = [option for option in alternatives if option != {"type": "null"}]
        nullable = len(options) < len(alternatives)
        if len(options) == 1:
            node = {**_resolve(options[0], defs, path), **node}
        else:
            # Mixed-type alternatives ("a step or a list of steps") have no structural form: unchecked.
            node = {key: value for key, value in node.items() if key in ("description", "default")}
    return _typed(node, defs, path, nullable=nullable)


def _typed(node: Mapping[str, Any], defs: Mapping[str, Any], path: str, *, nullable: bool) -> dict[str, Any]:
    unknown = (node.keys() - _HANDLED) | (node.keys() & {"anyOf", "allOf"})
    if unknown:
        raise ValueError(f"{path}: JSON Schema keywords with no CRD translation: {sorted(unknown)}")
    out: dict[str, Any] = {}
    kind = node.get("type")
    if kind is None and not node.keys() & {"enum", "const"}:
        out[PRESERVE] = True
    else:
        kind = kind or _enum_type(node, path)
        if kind not in _SCALARS | {"object", "array"}:
            raise ValueError(f"{path}: type {kind!r} has no structural form")
        out["type"] = kind
    out.update({key: node[key] for key in _KEPT if key in node})
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node:
            out[limit] = node[bound]
            out[bound] = True
    if "format" in node:
        if node["format"] not in _FORMATS:
            raise ValueError(f"{path}: format {node['format']!r} is not one the apiserver knows")
        out["format"] = node["format"]
    values = [node["const"]] if "const" in node else node.get("enum")
    if values is not None and nullable:
        # The apiserver refuses null against any enum (even one listing null); CEL skips null values.
        listed = ", ".join(json.dumps(value) for value in values)
        shown = ", ".join(str(value) for value in values)
        out["x-kubernetes-validations"] = [_rule(f"self in [{listed}]", f"must be one of: {shown}")]
        if kind == "string":  # no longer string can match; the bound keeps the rule's estimated cost low
            out["maxLength"] = max(len(value) for value in values)
    elif values is not None:
        out["enum"] = list(values)
    if kind == "object":
        _object(node, out, defs, path)
    elif kind == "array":
        if "items" not in node:
            raise ValueError(f"{path}: an array needs items")
        out["items"] = _convert(node["items"], defs, f"{path}[]")
    if nullable:
        out["nullable"] = True
    if node.get("default") is not None:
        out["default"] = node["default"]
    return out


def _enum_type(node: Mapping[str, Any], path: str) -> str:
    values = node["enum"] if "enum" in node else [node["const"]]
    kinds = {str: "string", int: "integer", float: "number", bool: "boolean"}
    found = {kinds.get(type(value)) for value in values}
    if len(found) != 1 or None in found:
        raise ValueError(f"{path}: enum {values!r} mixes types or has non-scalar values")
    return str(found.pop())


def _object(node: Mapping[str, Any], out: dict[str, Any], defs: Mapping[str, Any], path: str) -> None:
    properties: Mapping[str, Any] = node.get("properties", {})
    extra = node.get("additionalProperties", not properties)
    if properties:
        if extra is not False:
            raise ValueError(f"{path}: both properties and additionalProperties have no structural form")
        out["properties"] = {name: _convert(value, defs, f"{path}.{name}") for name, value in properties.items()}
        if node.get("required"):
            out["required"] = list(node["required"])
    elif extra is True or extra == {}:
        out[PRESERVE] = True
    elif isinstance(extra, Mapping):
        out["additionalProperties"] = _convert(extra, defs, f"{path}.*")


def _tidy(node: dict[str, Any]) -> dict[str, Any]:
    """Keys in one reading order everywhere, so the YAML diffs well."""
    for child in node.get("properties", {}).values():
        _tidy(child)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _tidy(node[key])
    ordered = {key: node[key] for key in _ORDER if key in node}
    ordered.update((key, value) for key, value in node.items() if key not in ordered)
    node.clear()
    node.update(ordered)
    return node


def _node(schema: dict[str, Any], *path: str) -> dict[str, Any]:
    """The node at `path` (property names, `*` for a map's values, `[]` for items); KeyError if gone."""
    node = schema
    for step in path:
        if step == "*":
            node = node["additionalProperties"]
        elif step == "[]":
            node = node["items"]
        else:
            node = node["properties"][step]
    return node


def _rule(rule: str, message: str) -> dict[str, str]:
    return {"rule": rule, "message": message}


def _validate(node: dict[str, Any], rule: str, message: str) -> None:
    node.setdefault("x-kubernetes-validations", []).append(_rule(rule, message))


def _immutable_spec(model: type[BaseModel], kind: str) -> dict[str, Any]:
    """A spec the apiserver refuses to change: the operator acts on it once, so edits would be ignored."""
    spec = structural_schema(model)
    _validate(spec, "self == oldSelf", f"spec is immutable: create a new {kind}")
    return spec


def _workflow_spec() -> dict[str, Any]:
    """WorkflowSpec plus the checks of compile_workflow that are cheap in CEL, with the bounds they need."""
    spec = structural_schema(WorkflowSpec)
    for section in ("diverge", "branch"):
        _node(spec, section)["maxProperties"] = MAX_DIVERGE_STEPS
        _node(spec, section, "*")["maxItems"] = MAX_DIVERGE_RULES
    rule = _node(spec, "diverge", "*", "[]")
    _validate(
        rule,
        "has(self.then) != has(self.goto)",
        "a diverge rule needs exactly one of 'then' (retry, fail, continue, succeed, continueAsNew) or 'goto'",
    )
    _validate(
        _node(spec, "branch", "*", "[]"),
        "has(self.then) != has(self.goto)",
        "a branch rule needs exactly one of 'goto' or 'then' (succeed, fail, continueAsNew)",
    )
    _validate(
        _node(rule, "match"), "!(has(self.error) && has(self.result))", "match either an error or a result, not both"
    )
    return spec


def _schedule_spec() -> dict[str, Any]:
    """The engine's ScheduleSpec, with `workflow` a Workflow's name in the Schedule's namespace, never a path."""
    spec = structural_schema(ScheduleSpec)
    spec["description"] = (
        "When to start which Workflow of this namespace with which input; what to do when fires overlap or"
        " were missed. Changing it fires from now on (past due times of the new timing are not caught up)."
    )
    workflow = _node(spec, "workflow")
    workflow.clear()
    workflow.update(
        {
            "type": "string",
            "description": "Name of a Workflow in this namespace (a name, not a path).",
            "pattern": NAME_PATTERN,
            "minLength": 1,
            "maxLength": MAX_NAME_LENGTH,
        }
    )
    return _tidy(spec)


def _status(model: type[BaseModel]) -> dict[str, Any]:
    status = structural_schema(model)
    conditions = _node(status, "conditions")
    # metav1.Condition's convention: one entry per type, merged by type under server-side apply.
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return status


_READY = '.status.conditions[?(@.type=="Ready")]'
_SUCCEEDED = '.status.conditions[?(@.type=="Succeeded")]'


def _column(name: str, json_path: str, kind: str = "string", *, wide: bool = False) -> dict[str, Any]:
    """A `kubectl get` column; a `wide` one (priority 1) only with `-o wide`."""
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": json_path}
    if wide:
        column["priority"] = 1
    return column


def _crd(
    *,
    kind: str,
    plural: str,
    purpose: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    columns: list[dict[str, Any]],
    short_names: tuple[str, ...] = (),
    selectable: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`selectable`: fields a list may filter on server-side (`fieldSelector`), as JSON paths."""
    names: dict[str, Any] = {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()}
    if short_names:
        names["shortNames"] = list(short_names)
    names["categories"] = ["cerebelum"]
    schema = {
        "type": "object",
        "description": purpose,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": columns,
    }
    if selectable:
        version["selectableFields"] = [{"jsonPath": path} for path in selectable]
    version["schema"] = {"openAPIV3Schema": _tidy(schema)}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {"group": GROUP, "names": names, "scope": "Namespaced", "versions": [version]},
    }


def build_crds() -> list[dict[str, Any]]:
    """The Workflow, Execution, Approval, Signal and Schedule CRDs (apiextensions.k8s.io/v1), in that order."""
    return [
        _crd(
            kind="Workflow",
            plural="workflows",
            purpose="A workflow definition: a timeline of steps with their retries, timeouts, "
            "approvals and jumps. The operator compiles it and reports the result in the Ready condition.",
            spec=_workflow_spec(),
            status=_status(WorkflowStatus),
            columns=[
                _column("Ready", f"{_READY}.status"),
                _column("Reason", f"{_READY}.reason"),
                _column("Age", ".metadata.creationTimestamp", "date"),
                _column("Steps", ".status.steps", "integer", wide=True),
                _column("Generation", ".metadata.generation", "integer", wide=True),
                _column("Compiled", ".status.observedGeneration", "integer", wide=True),
                _column("Message", f"{_READY}.message", wide=True),
            ],
            short_names=("wf",),
        ),
        _crd(
            kind="Execution",
            plural="executions",
            purpose="One run of a Workflow with its input. The engine's history is the truth; "
            "the status is a bounded projection of it.",
            spec=_immutable_spec(ExecutionSpec, "Execution"),
            status=_status(ExecutionStatus),
            columns=[
                _column("Phase", ".status.phase"),
                _column("Workflow", ".spec.workflow"),
                _column("Step", ".status.currentStep"),
                _column("Age", ".metadata.creationTimestamp", "date"),
                _column("Started", ".status.startedAt", "date", wide=True),
                _column("Finished", ".status.finishedAt", "date", wide=True),
                _column("Events", ".status.eventCount", "integer", wide=True),
                _column("Execution-ID", ".status.executionId", wide=True),
                _column("Run", ".status.run", "integer", wide=True),
                _column("Parent", ".status.parent.name", wide=True),
                _column("Message", f"{_SUCCEEDED}.message", wide=True),
            ],
            short_names=("exec",),
        ),
        _crd(
            kind="Approval",
            plural="approvals",
            purpose="A human decision on an Execution's approval step; the operator applies it once.",
            spec=_immutable_spec(ApprovalSpec, "Approval"),
            status=_status(ApprovalStatus),
            columns=[
                _column("Execution", ".spec.execution"),
                _column("Step", ".spec.step"),
                _column("Decision", ".spec.decision"),
                _column("Approver", ".spec.approver"),
                _column("Phase", ".status.phase"),
                _column("Age", ".metadata.creationTimestamp", "date"),
                _column("Message", ".status.message", wide=True),
            ],
            # The operator deletes them with their Execution (its time-to-live), found by this field.
            selectable=(".spec.execution",),
        ),
        _crd(
            kind="Signal",
            plural="signals",
            purpose="A named signal, with data, for an Execution's signal steps; the operator delivers it once.",
            spec=_immutable_spec(SignalSpec, "Signal"),
            status=_status(SignalStatus),
            columns=[
                _column("Execution", ".spec.execution"),
                _column("Signal", ".spec.name"),
                _column("Sender", ".spec.sender"),
                _column("Phase", ".status.phase"),
                _column("Age", ".metadata.creationTimestamp", "date"),
                _column("Run-ID", ".status.runId", wide=True),
                _column("Message", ".status.message", wide=True),
            ],
            # The operator deletes them with their Execution (its time-to-live), found by this field.
            selectable=(".spec.execution",),
        ),
        _crd(
            kind="Schedule",
            plural="schedules",
            purpose="Starts a Workflow of this namespace on a cron expression (in a time zone) or at an interval;"
            " each fire is an Execution owned by the Schedule. Durable: it fires once per due time across"
            " restarts of the operator.",
            spec=_schedule_spec(),
            status=_status(ScheduleStatus),
            columns=[
                _column("Workflow", ".spec.workflow"),
                _column("Schedule", ".status.schedule"),
                _column("Timezone", ".spec.timezone"),
                _column("Paused", ".spec.paused", "boolean"),
                _column("Last-Fire", ".status.lastFireTime", "date"),
                _column("Next-Fire", ".status.nextFireTime"),
                _column("Age", ".metadata.creationTimestamp", "date"),
                _column("Ready", f"{_READY}.status", wide=True),
                _column("Last-Execution", ".status.lastExecution", wide=True),
                _column("Note", ".spec.note", wide=True),
                _column("Message", f"{_READY}.message", wide=True),
            ],
            short_names=("sched",),
        ),
    ]
