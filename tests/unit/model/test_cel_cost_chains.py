"""A long chain of operators, fields or calls is estimated, not a crash of the cost estimate.

A chain nests as deep as it is long (`1 + 1 + …` is `((1 + 1) + 1) + …`), and the estimate
recursed along it: 1,000 terms, under the 4,096-character limit, raised RecursionError out of
`compile_workflow`, so `cerebelum apply` and the operator failed with no place named.
"""

from __future__ import annotations

import pytest

from cerebelum_operator.model import compile_workflow
from cerebelum_operator.model.spec import MAX_CEL_CHARS


@pytest.mark.parametrize(
    ("source", "terms"),
    [
        pytest.param(" + ".join(["1"] * 1000), 1000, id="a-thousand-additions"),
        pytest.param(" || ".join(["input.x == 1"] * 250), 250, id="alternatives"),
        pytest.param("input" + ".a" * 2000, 2000, id="fields"),
        pytest.param("input.s" + ".size()" * 500, 500, id="method-calls"),
        pytest.param("input.l" + "[0]" * 1300, 1300, id="indexes"),
    ],
)
def test_a_chain_as_long_as_an_expression_may_be_is_compiled_with_its_cost(source: str, terms: int) -> None:
    assert len(source) <= MAX_CEL_CHARS

    definition = compile_workflow({"timeline": ["a"], "output": source})

    assert definition.output is not None
    assert definition.output.cost.static_cost >= terms  # a unit per node at least: the whole chain was counted


def test_a_chain_of_additions_costs_what_its_nodes_and_sums_cost() -> None:
    definition = compile_workflow({"timeline": ["a"], "output": " + ".join(["1"] * 1000)})

    assert definition.output is not None
    # 1,000 literals and 999 additions, each addition paying one unit more for the scalar it joins.
    assert definition.output.cost.static_cost == 1000 + 2 * 999
