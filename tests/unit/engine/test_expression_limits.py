"""The CEL cost bound and the linear-time schema regexes, each limit named in its refusal."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cerebelum_operator.engine.expressions import ExpressionError, evaluate
from cerebelum_operator.model import InputInvalid, WorkflowInvalid, compile_workflow
from cerebelum_operator.model.cel_cost import MAX_CEL_COST, Bounds, data_bounds, parse_cost_model

RANGE = "[0,1,2,3,4,5,6,7,8,9]"


def nested_all(levels: int) -> str:
    body = "true"
    for level in reversed(range(levels)):
        body = f"{RANGE}.all(x{level}, {body})"
    return body


def refusal(spec: dict[str, Any]) -> str:
    with pytest.raises(WorkflowInvalid) as caught:
        compile_workflow({"timeline": ["a"], **spec})
    return str(caught.value)


def test_each_nested_comprehension_multiplies_the_estimate_by_its_ranges_size() -> None:
    costs = [parse_cost_model(nested_all(levels)).static_cost for levels in (1, 2, 3)]
    assert costs[1] > 9 * costs[0] and costs[2] > 9 * costs[1]


def test_the_issues_nested_all_over_small_lists_is_refused_at_apply_with_its_estimate_and_the_limit() -> None:
    message = refusal({"output": nested_all(7)})
    assert "output: CEL expression's estimated cost is" in message
    assert f"over the limit of {MAX_CEL_COST:,}" in message


def test_realistic_expressions_cost_well_under_the_budget_even_over_a_few_thousand_items() -> None:
    realistic = [
        "result.status == 'ok' && size(result.items) > 0",
        "{'total': steps.sum.result.total, 'region': input.region, 'ok': !has(error.type)}",
        "input.orders.all(o, o.amount > 0 && o.currency in ['EUR', 'USD'] && o.id.startsWith('ord-'))",
    ]
    bounds = Bounds(length=3000, chars=200, total=30_000)
    for source in realistic:
        assert parse_cost_model(source).estimate(bounds) < MAX_CEL_COST // 4, source


def test_map_and_filter_pay_for_the_evaluators_quadratic_accumulator() -> None:
    model = parse_cost_model("input.items.map(x, x + 1)")
    assert model.depends_on_data
    assert model.estimate(Bounds(1000, 0, 1000)) > 1000 * 1001 // 2
    assert not parse_cost_model("input.region == 'eu' && steps.a.result.ok").depends_on_data


def test_an_expression_nested_past_the_limit_is_refused_before_the_cel_parser_sees_it() -> None:
    message = refusal({"output": "(" * 40 + "1" + ")" * 40})
    assert "output: CEL expression is nested more than 32 levels deep (the limit)" in message


def test_an_expression_whose_data_makes_it_too_costly_is_refused_at_evaluation_without_running() -> None:
    definition = compile_workflow({"timeline": ["a"], "output": "input.xs.all(a, input.xs.all(b, a != b || a == b))"})
    assert definition.output is not None
    assert evaluate(definition.output, {"input": {"xs": [1, 2, 3]}, "steps": {}}, where="output") is True
    started = time.monotonic()
    with pytest.raises(ExpressionError, match=r"output: .* estimated cost [\d,]+ on this data .* exceeds the limit"):
        evaluate(definition.output, {"input": {"xs": list(range(5000))}, "steps": {}}, where="output")
    assert time.monotonic() - started < 1  # 25 million iterations were never run


def test_data_bounds_are_the_longest_container_the_longest_string_and_the_node_count() -> None:
    assert data_bounds([{"a": [1, 2, 3], "b": "xyzzy"}]) == Bounds(length=3, chars=5, total=8)


def test_a_backtracking_pattern_is_matched_in_linear_time() -> None:
    definition = compile_workflow(
        {
            "timeline": ["a"],
            "input": {
                "type": "object",
                "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}},
                "patternProperties": {"^(b+)+$": {"type": "integer"}},
                "additionalProperties": False,
            },
        }
    )
    started = time.monotonic()
    with pytest.raises(InputInvalid, match=r"does not match '\^\(a\+\)\+\$'"):
        definition.validate_input({"name": "a" * 40 + "!"})
    with pytest.raises(InputInvalid, match="does not match any of the regexes"):
        definition.validate_input({"b" * 40 + "!": 1})
    assert time.monotonic() - started < 1
    definition.validate_input({"name": "aaa", "bbb": 1})


@pytest.mark.parametrize(
    ("schema", "place"),
    [
        ({"properties": {"x": {"pattern": "(a)\\1"}}}, "input.properties.x.pattern"),
        ({"patternProperties": {"^(?!tmp)": {}}}, "input.patternProperties.^(?!tmp)"),
    ],
)
def test_a_pattern_the_linear_engine_cannot_compile_is_refused_at_apply_naming_its_place(
    schema: dict[str, Any], place: str
) -> None:
    message = refusal({"input": schema})
    assert f"{place}: regex" in message and "is not supported" in message and "RE2" in message


def test_a_schema_whose_refs_loop_in_place_or_multiply_is_refused() -> None:
    assert "validation would never end" in refusal({"input": {"$ref": "#"}})
    defs: dict[str, Any] = {f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(20)}
    defs["d20"] = {"type": "string"}
    assert "more than 10,000 subschemas" in refusal({"input": {"$defs": defs, "$ref": "#/$defs/d0"}})
    tree = {"$defs": {"n": {"properties": {"kids": {"items": {"$ref": "#/$defs/n"}}}}}, "$ref": "#/$defs/n"}
    compile_workflow({"timeline": ["a"], "input": tree}).validate_input({"kids": [{"kids": []}]})


def test_unevaluated_properties_beside_pattern_properties_is_refused() -> None:
    schema = {"patternProperties": {"^x": {}}, "unevaluatedProperties": False}
    assert "unevaluatedProperties cannot be used together with patternProperties" in refusal({"input": schema})
