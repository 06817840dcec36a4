"""The validator never crashes: every document compiles or is refused with its problem named."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cerebelum_operator.model import WorkflowInvalid, compile_workflow, parse_workflow

from .strategies import JSON_VALUES, Broken, garbled_specs, invalid_specs, valid_specs


def compile_or_refuse(document: Any) -> WorkflowInvalid | None:
    """Compile; return the refusal, and fail the test on any other exception."""
    refused: WorkflowInvalid | None = None
    try:
        compile_workflow(document)
    except WorkflowInvalid as exc:
        refused = exc
    if refused is not None:
        assert refused.problems, "a refusal lists at least one problem"
        for problem in refused.problems:
            assert problem.message, f"a problem without a message at {problem.path!r}"
    return refused


def reordered(value: Any) -> Any:
    """The same document with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(item) for item in value]
    return value


@given(valid_specs())
@example({"timeline": ["a", ["b", "c"]], "branch": {"c": [{"when": "true", "goto": "a", "maxIterations": 2}]}})
def test_a_valid_spec_compiles_and_every_timeline_step_gets_settings(spec: dict[str, Any]) -> None:
    definition = compile_workflow(spec)
    names = [n for entry in spec["timeline"] for n in ([entry] if isinstance(entry, str) else entry)]
    handlers = [
        *spec.get("finally", []),
        *(s["compensate"] for s in spec.get("steps", {}).values() if "compensate" in s),
    ]
    assert sorted(definition.steps) == sorted(names + handlers)
    for name, config in definition.steps.items():
        assert config.handler == (name in handlers)
        assert config.handler or definition.positions[config.position].count(name) == 1
        assert config.timeout_ms > 0 and config.lease_ms > 0 and config.retry.max_attempts >= 1


@given(valid_specs())
def test_a_valid_spec_compiles_to_the_same_definition_every_time_whatever_its_key_order(spec: dict[str, Any]) -> None:
    first = compile_workflow(copy.deepcopy(spec))
    again = compile_workflow(reordered(spec))
    assert again.spec_hash == first.spec_hash
    assert again.positions == first.positions
    assert again.steps == first.steps
    assert again.spec == first.spec


@given(valid_specs())
def test_the_stored_form_of_a_valid_spec_compiles_to_the_same_hash(spec: dict[str, Any]) -> None:
    definition = compile_workflow(spec)
    stored = json.loads(json.dumps(definition.spec.model_dump(mode="json", by_alias=True)))
    assert compile_workflow(stored).spec_hash == definition.spec_hash


@given(invalid_specs())
@example(Broken({"timeline": ["a"], "defaults": {"timeout": "9" * 400 + "d"}}, ("defaults.timeout",), "overflow"))
@example(Broken({"timeline": ["a"], "input": {"$schema": 5}}, ("input.$schema",), "a $schema that is no URI"))
@example(Broken({"timeline": ["a"], "input": {"$ref": "#/nope"}}, ("input.$ref",), "a $ref to nowhere"))
@example(Broken({"timeline": ["a"], "output": "1" + " + 1" * 30_000}, ("output", "characters"), "CEL segfault"))
@example(Broken({"timeline": ["a"], "diverge": {"a": [{"when": "", "then": "fail"}]}}, ("diverge.a[0].when",), "empty"))
@example(Broken({"timeline": [["a", 5]]}, ("timeline[0][1]",), "no union tags in the path"))
def test_an_invalid_spec_is_refused_with_a_message_naming_the_place_and_the_problem(broken: Broken) -> None:
    refused = compile_or_refuse(broken.document)
    assert refused is not None, f"accepted a spec with {broken.how}: {broken.document!r}"
    message = str(refused)
    for expected in broken.expect:
        assert expected in message, f"{broken.how}: {expected!r} not in {message!r}"
    for internal in ("constrained-str", "list[", "function-after", "pydantic"):
        assert internal not in message


@given(garbled_specs())
def test_a_spec_with_any_node_replaced_by_garbage_compiles_or_is_refused(document: Any) -> None:
    compile_or_refuse(document)


@given(JSON_VALUES)
@example(None)
@example([])
@example({"timeline": None})
def test_any_json_document_compiles_or_is_refused(document: Any) -> None:
    compile_or_refuse(document)


@given(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=6))
def test_parse_workflow_refuses_garbage_with_its_own_error(document: dict[str, Any]) -> None:
    problems = []
    try:
        parse_workflow(document)
    except WorkflowInvalid as refused:
        problems = refused.problems
    assert all(p.message for p in problems)


def test_a_self_referencing_document_is_refused_as_too_deep() -> None:
    document: dict[str, Any] = {"timeline": ["a"], "input": {}}
    document["input"]["properties"] = document["input"]
    refused = compile_or_refuse(document)
    assert refused is not None and "nested too deep" in str(refused)


@pytest.mark.parametrize("value", [float("nan"), b"\xff", {1, 2}, object()], ids=["nan", "bytes", "set", "object"])
def test_a_value_json_cannot_carry_is_refused_with_its_place(value: Any) -> None:
    refused = compile_or_refuse(
        {"timeline": ["a"], "diverge": {"a": [{"match": {"result": {"x": value}}, "then": "fail"}]}}
    )
    assert refused is not None and "diverge.a[0].match.result.x" in str(refused)
