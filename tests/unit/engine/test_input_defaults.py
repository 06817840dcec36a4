"""The input schema's `default`s are filled in when an execution starts, before validation (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine import decide
from cerebelum_operator.engine.events import ExecutionStarted
from cerebelum_operator.engine.state import ExecutionState
from cerebelum_operator.model import InputInvalid, compile_workflow

from .simulator import Simulator

ORDER: dict[str, Any] = {
    "type": "object",
    "required": ["id", "shipping"],
    "properties": {
        "id": {"type": "string"},
        "currency": {"type": "string", "default": "EUR"},
        "shipping": {
            "type": "object",
            "default": {},
            "required": ["speed"],
            "properties": {"speed": {"enum": ["slow", "fast"], "default": "slow"}, "gift": {"default": False}},
        },
        "notify": {"type": "object", "properties": {"email": {"type": "boolean", "default": True}}},
    },
}


def started_input(spec: dict[str, Any], input: Any) -> Any:
    sim = Simulator.start(spec, input)
    event = sim.history[0].event
    assert isinstance(event, ExecutionStarted)
    assert sim.state.input == event.input and sim.replayed().input == event.input
    assert sim.task("a").arguments["input"] == event.input
    return event.input


def test_missing_properties_get_their_defaults_and_a_defaulted_object_its_own() -> None:
    # shipping is missing and defaulted to {}: its own required "speed" comes from its default.
    assert started_input({"timeline": ["a"], "input": ORDER}, {"id": "o-1"}) == {
        "id": "o-1",
        "currency": "EUR",
        "shipping": {"speed": "slow", "gift": False},
    }


def test_a_present_value_is_kept_and_a_present_object_gets_its_missing_defaults() -> None:
    given = {"id": "o-1", "currency": "USD", "shipping": {"speed": "fast"}, "notify": {}}
    assert started_input({"timeline": ["a"], "input": ORDER}, given) == {
        "id": "o-1",
        "currency": "USD",
        "shipping": {"speed": "fast", "gift": False},
        "notify": {"email": True},
    }
    assert given == {"id": "o-1", "currency": "USD", "shipping": {"speed": "fast"}, "notify": {}}, "not changed"


def test_defaults_behind_refs_and_all_of_are_filled() -> None:
    schema = {
        "$defs": {"Retry": {"type": "object", "properties": {"times": {"default": 3}}}},
        "allOf": [{"properties": {"region": {"default": "eu-west-1"}}}],
        "properties": {"retry": {"$ref": "#/$defs/Retry", "default": {}}},
    }
    assert started_input({"timeline": ["a"], "input": schema}, {}) == {"region": "eu-west-1", "retry": {"times": 3}}


def test_defaults_in_branches_the_value_may_not_take_are_not_filled() -> None:
    schema = {
        "anyOf": [{"properties": {"a": {"default": 1}}}, {"properties": {"b": {"default": 2}}}],
        "if": {"required": ["x"]},
        "then": {"properties": {"y": {"default": 3}}},
    }
    assert started_input({"timeline": ["a"], "input": schema}, {"x": 0}) == {"x": 0}


def test_every_array_item_gets_its_defaults() -> None:
    schema = {"properties": {"lines": {"items": {"properties": {"qty": {"default": 1}}}}}}
    assert started_input({"timeline": ["a"], "input": schema}, {"lines": [{}, {"qty": 5}]}) == {
        "lines": [{"qty": 1}, {"qty": 5}]
    }


def test_a_default_that_breaks_the_schema_is_refused_like_a_bad_value() -> None:
    schema = {"properties": {"n": {"type": "integer", "default": "three"}}}
    with pytest.raises(InputInvalid, match="'three' is not of type 'integer'"):
        Simulator.start({"timeline": ["a"], "input": schema}, {})


def test_an_input_the_defaults_make_too_large_is_refused_naming_the_payload_limit() -> None:
    schema = {"properties": {"lines": {"items": {"properties": {"note": {"default": "x" * 1000}}}}}}
    definition = compile_workflow({"timeline": ["a"], "input": schema})
    start = cmd.Start("wf", {"lines": [{} for _ in range(100)]})

    with pytest.raises(InputInvalid, match=r"defaults filled in is 98\.\d KiB, over the 64\.0 KiB payload limit"):
        decide(definition, ExecutionState(execution_id="e"), start, now_ms=0, max_input_bytes=64 * 1024)
    decided = decide(definition, ExecutionState(execution_id="e"), start, now_ms=0, max_input_bytes=128 * 1024)
    assert decided.state is not None and decided.state.input["lines"][0]["note"] == "x" * 1000


def test_an_input_without_defaults_to_fill_is_recorded_as_given() -> None:
    given = {"id": "o-1", "currency": "USD", "shipping": {"speed": "fast", "gift": True}}
    definition = compile_workflow({"timeline": ["a"], "input": ORDER})
    assert definition.with_input_defaults(given) is given
    assert compile_workflow({"timeline": ["a"], "input": {"type": "object"}}).with_input_defaults(given) is given
