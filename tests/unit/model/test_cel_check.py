"""CEL names are checked when a workflow is applied: unknown names, functions and steps are refused.

Each refusal names its place. The function allow-list is the runtime's: every function it
accepts is evaluated here through the engine's own `evaluate`, and the functions it refuses are
shown to fail there too, so apply refuses exactly what would have failed an execution.
"""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine.expressions import ExpressionError, evaluate
from cerebelum_operator.model import WorkflowInvalid, compile_workflow
from cerebelum_operator.model.cel_check import (
    EXPRESSION_VARIABLES,
    FUNCTIONS,
    MAX_NAME_PROBLEMS,
    MAX_SUGGESTIONS,
    METHODS,
    NAMESPACED_FUNCTIONS,
    check_names,
)
from cerebelum_operator.model.cel_cost import parse_cost_model
from cerebelum_operator.model.errors import MAX_MESSAGE_CHARS
from cerebelum_operator.model.spec import MAX_CEL_CHARS
from tests.support.cel_constructs import expression_spec

TIMELINE = ["fetch", "check", "store"]


def workflow(construct: str, source: str) -> dict[str, Any]:
    """A workflow with `source` as the one expression of the given construct."""
    return expression_spec(construct, source, timeline=TIMELINE, on="check", reached="check", target="store")


PLACES = {
    "branch": "branch.check[0].when",
    "diverge": "diverge.check[0].when",
    "output": "output",
    "timer": "steps.check.timer.until",
    "when": "steps.check.when",
    "set": "steps.check.set.seen",
    "args": "steps.check.args.seen",
    "items": "steps.check.forEach.items",
    "itemArgs": "steps.check.args.seen",
    "startInput": "steps.check.child.input",
    "flowControl": "flowControl.priority",
}


def refusal(construct: str, source: str) -> str:
    with pytest.raises(WorkflowInvalid) as caught:
        compile_workflow(workflow(construct, source))
    return str(caught.value)


@pytest.mark.parametrize(
    ("construct", "source", "message"),
    [
        pytest.param(
            "branch",
            "inptu.x > 1",
            "unknown name 'inptu'; this expression can see input, phases, result, steps, vars; did you mean 'input'?",
            id="misspelt-variable",
        ),
        pytest.param(
            "output",
            "result.id",
            "unknown name 'result'; this expression can see input, phases, steps, vars"
            " ('result' is seen only by branch rules, diverge rules and steps' set)",
            id="result-in-output",
        ),
        pytest.param(
            "branch",
            "error.type == 'Timeout'",
            "unknown name 'error'; this expression can see input, phases, result, steps, vars"
            " ('error' is seen only by diverge rules)",
            id="error-in-a-branch",
        ),
        pytest.param("diverge", "nosuchfn(result)", "unknown function 'nosuchfn'", id="unknown-function"),
        pytest.param(
            "diverge", "sise(result) > 0", "unknown function 'sise'; did you mean 'size'?", id="close-function"
        ),
        pytest.param("branch", "result.name.lowerAscii() == 'a'", "unknown method 'lowerAscii'", id="extension-method"),
        pytest.param("output", "math.greatest(1, 2)", "unknown function 'math.greatest'", id="namespaced-function"),
        pytest.param("output", "max(input.a, input.b)", "unknown function 'max'", id="max"),
        pytest.param(
            "branch",
            "contains(result.name, 'a')",
            "'contains' is a method: write x.contains(…)",
            id="method-as-function",
        ),
        pytest.param("branch", "result.n.int() > 1", "'int' is not a method: write int(x)", id="function-as-method"),
        pytest.param(
            "branch", "result.name.contains('a', 'b')", "method 'contains' takes 1 argument, not 2", id="arity"
        ),
        pytest.param(
            "output",
            "steps.fetc.id",
            "unknown step 'fetc' in steps.fetc: it is not in the timeline; did you mean 'fetch'?",
        ),
        pytest.param("output", "steps['stroe'].id", "unknown step 'stroe' in steps['stroe']", id="indexed-step"),
        pytest.param("output", "has(steps.nothing.id)", "unknown step 'nothing' in steps.nothing", id="step-in-has"),
        pytest.param(
            "branch",
            "result.items.all(x, x > 0) && x > 1",
            "unknown name 'x'; this expression can see input, phases, result, steps",
            id="comprehension-variable-after-its-body",
        ),
        pytest.param(
            "output",
            "x.all(x, x)",
            "unknown name 'x'; this expression can see input, phases, steps",
            id="comprehension-variable-in-its-own-range",
        ),
        pytest.param(
            "output",
            "[1].map(x, x).map(y, x + y)",
            "unknown name 'x'; this expression can see input, phases, steps",
            id="comprehension-variable-in-a-sibling",
        ),
    ],
)
def test_a_name_the_runtime_would_not_find_is_refused_at_apply_with_its_place(
    construct: str, source: str, message: str
) -> None:
    assert f"{PLACES[construct]}: {message}" in refusal(construct, source)


@pytest.mark.parametrize(
    ("construct", "source"),
    [
        ("branch", "result.ok && input.retry && steps.fetch.id != ''"),
        ("diverge", "error.type == 'Timeout' || result == null"),
        ("output", "{'id': steps.fetch.id, 'n': size(input.items)}"),
        ("output", "input.items.all(x, x > 0)"),
        ("output", "input.items.exists(x, x > 0) && input.items.exists_one(x, x == 1)"),
        ("output", "input.items.filter(x, x > 0).map(y, y * 2)"),
        ("output", "input.items.map(x, x > 0, x * 2)"),
        ("output", "input.rows.all(row, row.all(cell, cell > 0 && row.size() > 0))"),
        ("output", "input.items.map(input, input + 1)"),  # a comprehension variable shadows a variable
        ("output", "input.items.map(steps, steps.anything)"),  # ... and `steps`, so no step is checked
        ("output", "steps[input.name].id"),  # a dynamic index is left to run time
        ("output", "steps['fe\\x74ch']"),  # an escaped name is too
        ("output", "has(steps.check.id) ? steps['check'].id : ''"),
        ("output", "type(input.x) == string || type(input.x) == null_type"),
        ("output", "optional.of(input.x).orValue(1)"),
        ("output", "timestamp(input.at).getFullYear() > 2000"),
    ],
)
def test_names_the_expression_can_see_are_accepted(construct: str, source: str) -> None:
    compile_workflow(workflow(construct, source))


def test_a_started_executions_snapshot_is_not_refused_for_its_names_and_fails_only_where_it_did() -> None:
    spec = workflow("output", "inptu.x")
    with pytest.raises(WorkflowInvalid):
        compile_workflow(spec)

    definition = compile_workflow(spec, started=True)

    assert definition.output is not None
    with pytest.raises(ExpressionError, match="inptu"):
        evaluate(definition.output, {"input": {"x": 1}, "steps": {}}, where="output")


def test_every_problem_of_a_workflow_is_listed_each_with_its_own_place() -> None:
    spec = workflow("output", "steps.fetc")
    spec["branch"] = {"fetch": [{"when": "reslt", "goto": "store"}]}

    message = refusal_of(spec)

    assert "output: unknown step 'fetc'" in message
    assert "branch.fetch[0].when: unknown name 'reslt'" in message


def refusal_of(spec: dict[str, Any]) -> str:
    with pytest.raises(WorkflowInvalid) as caught:
        compile_workflow(spec)
    return str(caught.value)


def test_one_expression_reports_each_problem_once_and_at_most_a_few_with_a_count_of_the_rest() -> None:
    source = " + ".join(f"name{i} + name{i}" for i in range(20))

    problems = check_names(parse_cost_model(source).tree, construct="output", steps=TIMELINE)

    assert len(problems) == MAX_NAME_PROBLEMS
    assert problems[0].startswith("unknown name 'name0'")
    assert problems[-1].endswith(f"(and {20 - MAX_NAME_PROBLEMS} more problems of names)")


def test_the_longest_expression_against_a_thousand_steps_reports_its_one_unknown_step_once() -> None:
    steps = [f"step_{i}" for i in range(1000)]
    source = " || ".join(["steps.step_1.ok"] * 1000)[:MAX_CEL_CHARS].rsplit(" || ", 1)[0]
    unknown = " || ".join(["steps.stepp_1.ok"] * 1000)[:MAX_CEL_CHARS].rsplit(" || ", 1)[0]
    tree, bad_tree = parse_cost_model(source).tree, parse_cost_model(unknown).tree

    # Its time is measured, not asserted here (docs/workflow-reference.md: about 3 ms).
    assert check_names(tree, construct="output", steps=set(steps)) == []
    assert len(check_names(bad_tree, construct="output", steps=set(steps))) == 1


def test_a_workflow_gets_a_few_did_you_mean_hints_in_all_not_one_per_problem() -> None:
    steps = [f"step_{i}" for i in range(300)]
    rules = [{"when": f"steps.stepp_{i}.ok", "goto": "step_299"} for i in range(60)]
    spec = {"timeline": steps, "branch": {"step_0": rules}}

    with pytest.raises(WorkflowInvalid) as refused:
        compile_workflow(spec)

    problems = [str(problem) for problem in refused.value.problems]
    assert sum("unknown step 'stepp_" in p for p in problems) == 60  # every problem, each with its place
    assert sum("did you mean" in p for p in problems) == MAX_SUGGESTIONS


# -- The allow-list is what the runtime evaluates --------------------------------------------

# One expression per allowed function, method and argument count, each evaluated below.
EXAMPLES: dict[tuple[str, str, int], str] = {
    ("function", "has", 1): "has(input.m.a)",
    ("function", "size", 1): "size(input.s)",
    ("function", "int", 1): "int('1')",
    ("function", "uint", 1): "uint(1)",
    ("function", "double", 1): "double(1)",
    ("function", "string", 1): "string(1)",
    ("function", "bytes", 1): "bytes('a')",
    ("function", "timestamp", 1): "timestamp(input.at)",
    ("function", "duration", 1): "duration('90s')",
    ("function", "dyn", 1): "dyn(1)",
    ("function", "type", 1): "type(1) == int",
    ("namespaced", "optional.of", 1): "optional.of(1)",
    ("namespaced", "optional.ofNonZeroValue", 1): "optional.ofNonZeroValue(1)",
    ("namespaced", "optional.none", 0): "optional.none()",
    ("method", "size", 0): "input.items.size()",
    ("method", "contains", 1): "input.s.contains('b')",
    ("method", "startsWith", 1): "input.s.startsWith('a')",
    ("method", "endsWith", 1): "input.s.endsWith('c')",
    ("method", "matches", 1): "input.s.matches('^a.c$')",
    ("method", "getFullYear", 0): "timestamp(input.at).getFullYear()",
    ("method", "getMonth", 0): "timestamp(input.at).getMonth()",
    ("method", "getDate", 0): "timestamp(input.at).getDate()",
    ("method", "getDayOfMonth", 0): "timestamp(input.at).getDayOfMonth()",
    ("method", "getDayOfYear", 0): "timestamp(input.at).getDayOfYear()",
    ("method", "getDayOfWeek", 0): "timestamp(input.at).getDayOfWeek()",
    ("method", "getHours", 0): "duration('2h').getHours() + timestamp(input.at).getHours()",
    ("method", "getMinutes", 0): "duration('2m').getMinutes() + timestamp(input.at).getMinutes()",
    ("method", "getSeconds", 0): "duration('2s').getSeconds() + timestamp(input.at).getSeconds()",
    ("method", "getMilliseconds", 0): "duration('2s').getMilliseconds() + timestamp(input.at).getMilliseconds()",
    ("method", "hasValue", 0): "optional.of(1).hasValue()",
    ("method", "value", 0): "optional.of(1).value()",
    ("method", "orValue", 1): "optional.none().orValue(2)",
    ("method", "or", 1): "optional.none().or(optional.of(1))",
    ("method", "all", 2): "input.items.all(x, x > 0)",
    ("method", "exists", 2): "input.items.exists(x, x > 2)",
    ("method", "exists_one", 2): "input.items.exists_one(x, x > 2)",
    ("method", "existsOne", 2): "input.items.existsOne(x, x > 2)",
    ("method", "filter", 2): "input.items.filter(x, x > 1)",
    ("method", "map", 2): "input.items.map(x, x * 2)",
    ("method", "map", 3): "input.items.map(x, x > 1, x * 2)",
}

INPUT = {"s": "abc", "items": [1, 2, 3], "m": {"a": 1}, "at": "2024-03-04T05:06:07Z"}


def allowed() -> set[tuple[str, str, int]]:
    tables = {"function": FUNCTIONS, "namespaced": NAMESPACED_FUNCTIONS, "method": METHODS}
    return {(form, name, count) for form, table in tables.items() for name, counts in table.items() for count in counts}


def test_every_allowed_function_has_an_example_that_runs() -> None:
    assert set(EXAMPLES) == allowed()


@pytest.mark.parametrize("key", sorted(EXAMPLES), ids=lambda key: f"{key[0]}-{key[1]}-{key[2]}")
def test_each_allowed_function_passes_the_check_and_evaluates_in_the_engine(key: tuple[str, str, int]) -> None:
    definition = compile_workflow(workflow("output", EXAMPLES[key]))

    assert definition.output is not None
    evaluate(definition.output, {"input": INPUT, "steps": {}}, where="output")


@pytest.mark.parametrize(
    "source",
    [
        "nosuchfn(1)",
        "max(1, 2)",
        "min(1, 2)",
        "bool('true')",
        "input.s.lowerAscii()",
        "input.s.charAt(0)",
        "input.s.split(',')",
        "input.items.sort()",
        "math.greatest(1, 2)",
        "contains(input.s, 'a')",
        "matches(input.s, 'a')",
        "input.s.int()",
        "input.s.contains('a', 'b')",
        "timestamp(input.at).getHours('UTC')",
        "input.items.all(i, v, v > 0)",
        "input.items.filter(x, x > 0, x)",
    ],
)
def test_what_the_check_refuses_really_fails_in_the_engine(source: str) -> None:
    spec = workflow("output", source)
    with pytest.raises(WorkflowInvalid):
        compile_workflow(spec)
    definition = compile_workflow(spec, started=True)
    assert definition.output is not None

    with pytest.raises(ExpressionError):
        evaluate(definition.output, {"input": INPUT, "steps": {}}, where="output")


def test_the_table_of_what_each_expression_sees_names_every_construct_that_compiles_cel() -> None:
    assert set(EXPRESSION_VARIABLES) == set(PLACES)


def test_a_name_seen_by_every_construct_but_this_one_names_them_all_in_the_message() -> None:
    message = refusal("flowControl", "steps.check.x == 1")
    assert "'steps' is seen only by" in message and "child and continueAsNew inputs" in message


def test_a_workflow_with_thousands_of_bad_expressions_gets_a_bounded_message_counting_the_rest() -> None:
    steps = [f"s{i}" for i in range(1000)]
    spec = {
        "timeline": steps,
        "branch": {
            name: [{"when": f"nosuch{j}(result)", "goto": name, "maxIterations": 1} for j in range(3)] for name in steps
        },
    }
    with pytest.raises(WorkflowInvalid) as refused:
        compile_workflow(spec)

    message = str(refused.value)
    assert len(refused.value.problems) == 3000
    assert len(message) <= MAX_MESSAGE_CHARS + 100
    assert message.startswith("branch.s0[0].when: unknown function 'nosuch0'")
    listed = message.count("unknown function")
    assert message.endswith(f"; and {3000 - listed} more problems")
