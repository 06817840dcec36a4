"""Hypothesis strategies for workflow spec documents, as users write them in YAML.

`valid_specs()` builds documents that are valid by construction: a timeline of sequential
steps and parallel groups, per-step settings, diverge and branch rules with CEL conditions and
bounded backward gotos, an input JSON Schema. `invalid_specs()` breaks one of them in one known
way and says which words (the place, the problem) the validator's message must contain.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from cerebelum_operator.model.compile import RESERVED_STEP_NAMES

JSON = Any
Spec = dict[str, Any]

# Step names the generator never produces as real steps (longer than STEP_NAME allows).
GHOST = "ghost_step"
ERROR_TYPES = ["Boom", "QuotaExceeded", "Timeout", "Flaky"]
UNITS = ["ms", "s", "m", "h"]

STEP_NAME = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(lambda n: n not in RESERVED_STEP_NAMES)

# CEL over `result`, `input` and `steps`. The safe ones never fail whatever the result; the
# fragile ones fail at run time on some results (a missing field), which must fail the execution
# cleanly. Mostly safe, so that generated runs get far.
SAFE_BRANCH_CONDITIONS = [
    "false",
    "type(result) == map && has(result.flag) && result.flag == true",
    "type(result) == map && 'again' in result && result.again == true",
    "type(result) == map && has(result.n) && result.n > 2",
    "size(steps) >= 2",
    "input != null",
    "result == null",
]
FRAGILE_BRANCH_CONDITIONS = ["result.flag == true", "result.n > 2", "'again' in result"]
# CEL over `result`, `error`, `input` and `steps` (`error` is null on a success, `result` on a failure).
SAFE_DIVERGE_CONDITIONS = [
    "false",
    "error != null && error.type == 'Boom'",
    "result != null && type(result) == map && has(result.flag) && result.flag == true",
    "error == null || error.message.contains('again')",
    "size(steps) > 0",
    "result != null && type(result) == map && has(result.approved)",
]
FRAGILE_DIVERGE_CONDITIONS = ["error.message.contains('again')", "result.flag"]


def conditions(safe: list[str], fragile: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(*[st.sampled_from(safe)] * 4, st.sampled_from(fragile))


BRANCH_CONDITIONS = conditions(SAFE_BRANCH_CONDITIONS, FRAGILE_BRANCH_CONDITIONS)
DIVERGE_CONDITIONS = conditions(SAFE_DIVERGE_CONDITIONS, FRAGILE_DIVERGE_CONDITIONS)
OUTPUTS = [
    "steps",
    "{'count': size(steps)}",
    "input",
    "{'in': input, 'steps': steps}",
    # CEL values JSON has no literal for: the output must still be stored as JSON.
    "{'at': timestamp('2020-01-01T00:00:00Z'), 'took': duration('1h1.5s'), 'raw': b'abc'}",
    "{2: 'two', true: 'yes'}",
    "[1u, 2.5, null]",
    "double('nan')",
    "optional.of(size(steps))",
]


def durations(*, max_value: int = 90) -> st.SearchStrategy[str]:
    single = st.builds(lambda n, unit: f"{n}{unit}", st.integers(1, max_value), st.sampled_from(UNITS))
    combined = st.builds(lambda h, m: f"{h}h{m}m", st.integers(1, 3), st.integers(1, 59))
    return st.one_of(single, combined, st.builds(lambda n: f"{n}.5s", st.integers(0, 9)))


def retry_policies() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "maxAttempts": st.integers(1, 5),
            "initialInterval": durations(),
            "backoffCoefficient": st.floats(1.0, 10.0, allow_nan=False),
            "maxInterval": durations(),
            "jitter": st.floats(0.0, 1.0, allow_nan=False),
            "nonRetryableErrors": st.lists(st.sampled_from(ERROR_TYPES), max_size=2, unique=True),
        },
    )


# Step conditions: constant, or reading the input or an earlier result that may be absent.
WHEN = ["true", "false", "input != null", "size(steps) % 2 == 0"]


@st.composite
def step_settings(draw: st.DrawFn) -> dict[str, Any]:
    settings = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "timeout": durations(),
                "heartbeatTimeout": durations(),
                "retry": retry_policies(),
                "taskQueue": st.sampled_from(["infra", "gpu", "default"]),
            },
        )
    )
    kind = draw(st.integers(0, 5))
    if kind == 0:  # a built-in approval step, no worker
        approval = {"timeout": durations(), "kind": st.sampled_from(["go-live", "ok"])}
        settings["approval"] = draw(st.fixed_dictionaries({}, optional=approval))
    elif kind == 1:  # a timer step, no worker: it takes none of a worker's settings
        settings = {"timer": {"duration": draw(durations())}}
    elif kind == 2:  # a fan-out over a short list, items in flight one to three at a time
        settings["forEach"] = {
            "items": draw(
                st.sampled_from(["[]", "[1]", "[1, 2, 3]", "[1, 2, 3, 4, 5]", "input == null ? [] : [0, 1]"])
            ),
            "concurrency": draw(st.integers(1, 3)),
            "onItemFailure": draw(st.sampled_from(["failFast", "collect"])),
        }
    if draw(st.integers(0, 3)) == 0:
        settings["when"] = draw(st.sampled_from(WHEN))
    return settings


def defaults() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "timeout": durations(),
            "heartbeatTimeout": durations(),
            "lease": durations(),
            "retry": retry_policies(),
        },
    )


@st.composite
def input_schemas(draw: st.DrawFn) -> dict[str, Any]:
    """An object schema whose properties are integers or strings, some required."""
    names = draw(st.lists(st.sampled_from(["region", "size", "name", "count"]), max_size=3, unique=True))
    properties = {name: {"type": draw(st.sampled_from(["integer", "string"]))} for name in names}
    required = [name for name in names if draw(st.booleans())]
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


@st.composite
def inputs_for(draw: st.DrawFn, schema: dict[str, Any] | None) -> JSON:
    """An input that satisfies `schema` (one built by `input_schemas`), or any JSON without one."""
    if schema is None:
        return draw(st.one_of(st.none(), st.fixed_dictionaries({"k": st.integers(0, 9)})))
    value: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        if name in schema.get("required", []) or draw(st.booleans()):
            value[name] = draw(st.integers(-5, 5) if prop["type"] == "integer" else st.text(max_size=5))
    return value


@dataclass(frozen=True)
class Layout:
    """Where each step is: the timeline's positions and the position of every name."""

    positions: list[list[str]]

    @property
    def names(self) -> list[str]:
        return [name for members in self.positions for name in members]

    def position(self, name: str) -> int:
        return next(i for i, members in enumerate(self.positions) if name in members)

    @classmethod
    def of(cls, spec: Spec) -> Layout:
        return cls([[entry] if isinstance(entry, str) else list(entry) for entry in spec["timeline"]])


def _timeline(draw: st.DrawFn, names: list[str]) -> list[str | list[str]]:
    timeline: list[str | list[str]] = []
    rest = list(names)
    while rest:
        size = draw(st.integers(1, min(3, len(rest))))
        members, rest = rest[:size], rest[size:]
        timeline.append(members[0] if size == 1 and draw(st.booleans()) else members)
    return timeline


def _goto_rule(draw: st.DrawFn, layout: Layout, source: str) -> dict[str, Any]:
    target = draw(st.sampled_from(layout.names))
    rule: dict[str, Any] = {"goto": target}
    if layout.position(target) <= layout.position(source) or draw(st.booleans()):
        rule["maxIterations"] = draw(st.integers(1, 3))
    return rule


def _diverge_rule(draw: st.DrawFn, layout: Layout, source: str) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    match_kind = draw(st.sampled_from(["error", "message", "both", "result", "none"]))
    if match_kind == "error":
        rule["match"] = {"error": {"type": draw(st.sampled_from([*ERROR_TYPES, "ApprovalTimedOut"]))}}
    elif match_kind == "message":
        rule["match"] = {"error": {"messageContains": "again"}}
    elif match_kind == "both":
        rule["match"] = {"error": {"type": draw(st.sampled_from(ERROR_TYPES)), "messageContains": "again"}}
    elif match_kind == "result":
        rule["match"] = {
            "result": draw(st.sampled_from([{"flag": True}, {"status": "pending"}, {"approved": True}, {}]))
        }
    if match_kind == "none" or draw(st.booleans()):
        rule["when"] = draw(DIVERGE_CONDITIONS)
    if draw(st.booleans()):
        rule["then"] = draw(st.sampled_from(["retry", "fail", "continue", "succeed"]))
        if rule["then"] == "fail" and draw(st.booleans()):
            rule["message"] = "declared"
    else:
        rule.update(_goto_rule(draw, layout, source))
    if match_kind not in ("result", "none") and rule.get("then") != "retry" and draw(st.booleans()):
        rule["afterRetries"] = True
    return rule


def _branch_rule(draw: st.DrawFn, layout: Layout, source: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"when": draw(BRANCH_CONDITIONS)}
    if draw(st.integers(0, 4)) == 0:  # ends the execution; conditional, so no step is hidden
        rule["then"] = draw(st.sampled_from(["succeed", "fail"]))
        return rule
    rule.update(_goto_rule(draw, layout, source))
    last = len(layout.positions) - 1
    # An unconditional goto stops the fall-through; from the last position it cannot hide a step.
    if layout.position(source) == last and layout.position(rule["goto"]) <= last and draw(st.booleans()):
        rule["when"] = "true"
        rule["maxIterations"] = draw(st.integers(1, 3))
    return rule


@st.composite
def valid_specs(draw: st.DrawFn, *, max_steps: int = 6, with_input: bool | None = None) -> Spec:
    names = draw(st.lists(STEP_NAME, min_size=1, max_size=max_steps, unique=True))
    timeline = _timeline(draw, names)
    layout = Layout.of({"timeline": timeline})
    spec: Spec = {"timeline": timeline}
    if draw(st.booleans()):
        spec["taskQueue"] = draw(st.sampled_from(["infra", "default", "q-1"]))
    if draw(st.booleans()):
        spec["defaults"] = draw(defaults())
    configured = draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True))
    if configured:
        spec["steps"] = {name: draw(step_settings()) for name in configured}
    # Graphs inside groups: a member waits for earlier members of its group (so no cycle).
    for entry in timeline:
        if isinstance(entry, list) and len(entry) > 1 and draw(st.booleans()):
            later = draw(st.sampled_from(entry[1:]))
            waits = draw(st.lists(st.sampled_from(entry[: entry.index(later)]), min_size=1, unique=True))
            spec.setdefault("steps", {}).setdefault(later, {})["dependsOn"] = waits
    # Compensations and finally steps ("-" keeps their names apart from the timeline's).
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        spec.setdefault("steps", {}).setdefault(name, {})["compensate"] = f"undo-{name}"
    if draw(st.integers(0, 3)) == 0:
        spec["finally"] = ["finally-1"] if draw(st.booleans()) else ["finally-1", "finally-2"]
    if draw(st.integers(0, 3)) == 0:  # a counter some steps bump, kept across loops
        spec["vars"] = {"n": 0}
        for name in draw(st.lists(st.sampled_from(names), max_size=2, unique=True)):
            spec.setdefault("steps", {}).setdefault(name, {})["set"] = {"n": "vars.n + 1"}
    diverging = draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
    if diverging:
        spec["diverge"] = {
            name: [_diverge_rule(draw, layout, name) for _ in range(draw(st.integers(1, 2)))] for name in diverging
        }
    branching = draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
    if branching:
        spec["branch"] = {
            name: [_branch_rule(draw, layout, name) for _ in range(draw(st.integers(1, 2)))] for name in branching
        }
    if draw(st.booleans()):
        spec["output"] = draw(st.sampled_from(OUTPUTS))
    if draw(st.integers(0, 3)) == 0:
        spec["timeout"] = draw(durations())
    if with_input is True or (with_input is None and draw(st.booleans())):
        spec["input"] = draw(input_schemas())
    return spec


# -- invalid documents ------------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    """A document broken in one known way, and words its WorkflowInvalid message must contain."""

    document: JSON
    expect: tuple[str, ...]
    how: str


Mutation = Callable[[st.DrawFn, Spec], Broken]
MUTATIONS: list[Mutation] = []


def mutation(function: Mutation) -> Mutation:
    MUTATIONS.append(function)
    return function


def _pick_step(draw: st.DrawFn, spec: Spec) -> str:
    return draw(st.sampled_from(Layout.of(spec).names))


def _add_rule(spec: Spec, section: str, step: str, rule: dict[str, Any]) -> int:
    rules = spec.setdefault(section, {}).setdefault(step, [])
    rules.append(rule)
    return len(rules) - 1


@mutation
def unknown_step_settings(draw: st.DrawFn, spec: Spec) -> Broken:
    section = draw(st.sampled_from(["steps", "diverge", "branch"]))
    value = {
        "steps": {},
        "diverge": [{"match": {"error": {"type": "Boom"}}, "then": "fail"}],
        "branch": [{"when": "false", "goto": _pick_step(draw, spec)}],
    }[section]
    spec.setdefault(section, {})[GHOST] = value
    return Broken(spec, (f"{section}.{GHOST}", f"unknown step '{GHOST}'"), "a section names a step not in the timeline")


@mutation
def unknown_goto_target(draw: st.DrawFn, spec: Spec) -> Broken:
    step = _pick_step(draw, spec)
    if draw(st.booleans()):
        index = _add_rule(spec, "branch", step, {"when": "false", "goto": GHOST})
        where = f"branch.{step}[{index}].goto"
    else:
        index = _add_rule(spec, "diverge", step, {"match": {"error": {"type": "Boom"}}, "goto": GHOST})
        where = f"diverge.{step}[{index}].goto"
    return Broken(spec, (where, f"unknown step '{GHOST}'"), "a goto to a step not in the timeline")


@mutation
def duplicate_step(draw: st.DrawFn, spec: Spec) -> Broken:
    name = _pick_step(draw, spec)
    timeline = spec["timeline"]
    index = draw(st.integers(0, len(timeline)))
    if index < len(timeline) and isinstance(timeline[index], list) and draw(st.booleans()):
        timeline[index].append(name)
    else:
        timeline.insert(index, name)
    seen: set[str] = set()
    for i, entry in enumerate(timeline):
        for j, member in enumerate([entry] if isinstance(entry, str) else entry):
            if member == name and name in seen:
                where = f"timeline[{i}]" if isinstance(entry, str) else f"timeline[{i}][{j}]"
                return Broken(spec, (where, f"duplicate step name '{name}'"), "a step twice in the timeline")
            seen.add(member)
    raise AssertionError("the duplicate was not inserted")


@mutation
def reserved_step_name(draw: st.DrawFn, spec: Spec) -> Broken:
    name = draw(st.sampled_from(sorted(RESERVED_STEP_NAMES)))
    spec["timeline"].append(name)
    return Broken(spec, (f"timeline[{len(spec['timeline']) - 1}]", "reserved"), "a reserved step name")


@mutation
def unbounded_backward_goto(draw: st.DrawFn, spec: Spec) -> Broken:
    layout = Layout.of(spec)
    source = _pick_step(draw, spec)
    target = draw(st.sampled_from([n for n in layout.names if layout.position(n) <= layout.position(source)]))
    if draw(st.booleans()):
        index = _add_rule(spec, "branch", source, {"when": "result.again == true", "goto": target})
        where = f"branch.{source}[{index}].goto"
    else:
        index = _add_rule(spec, "diverge", source, {"match": {"error": {"type": "Flaky"}}, "goto": target})
        where = f"diverge.{source}[{index}].goto"
    return Broken(spec, (where, "loop with no bound"), "a backward goto without maxIterations")


def _settings_places(draw: st.DrawFn, spec: Spec) -> list[tuple[list[str], str]]:
    """(container path, field) pairs where a duration or a retry value can go."""
    step = _pick_step(draw, spec)
    return [
        (["defaults"], "timeout"),
        (["defaults"], "lease"),
        (["defaults"], "heartbeatTimeout"),
        (["defaults", "retry"], "initialInterval"),
        (["defaults", "retry"], "maxInterval"),
        (["steps", step], "timeout"),
        (["steps", step, "retry"], "initialInterval"),
        (["steps", step, "approval"], "timeout"),
    ]


def _put(spec: Spec, container: list[str], field: str, value: JSON) -> str:
    node = spec
    for key in container:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[field] = value
    return ".".join([*container, field])


BAD_DURATIONS = ["5 minutes", "", "1x", "-1s", "1.s", "10", "s", "1h 30m", "9" * 400 + "d", "100000d", "0x10s"]


@mutation
def bad_duration(draw: st.DrawFn, spec: Spec) -> Broken:
    container, field = draw(st.sampled_from(_settings_places(draw, spec)))
    where = _put(spec, container, field, draw(st.sampled_from(BAD_DURATIONS)))
    return Broken(spec, (where,), "a duration that is not <number><unit>")


WRONG_VALUES: list[tuple[list[str], str, list[JSON]]] = [
    ([], "timeline", [5, "a", {"a": 1}, None, []]),
    ([], "steps", [["a"], "a", 3]),
    ([], "taskQueue", [5, [], {"q": 1}]),
    ([], "output", [5, ["steps"], {"a": 1}]),
    ([], "input", ["object", [], 3]),
    ([], "defaults", ["5m", [], 1]),
    (["defaults", "retry"], "maxAttempts", ["three", 0, -1, 1001, 2.5, None, 10**30]),
    (["defaults", "retry"], "backoffCoefficient", [0.5, "x", 200, -1, None]),
    (["defaults", "retry"], "jitter", [-0.1, 1.5, "some"]),
    (["defaults", "retry"], "nonRetryableErrors", ["Boom", 5, [1, 2]]),
    (["defaults"], "retry", ["always", 3, []]),
    (["defaults"], "timeout", [5, 1.5, ["5m"], True]),
]


@mutation
def wrong_type(draw: st.DrawFn, spec: Spec) -> Broken:
    container, field, values = draw(st.sampled_from(WRONG_VALUES))
    where = _put(spec, container, field, draw(st.sampled_from(values)))
    return Broken(spec, (where,), "a value of the wrong type or out of range")


@mutation
def wrong_type_in_a_step_or_rule(draw: st.DrawFn, spec: Spec) -> Broken:
    step = _pick_step(draw, spec)
    choice = draw(st.sampled_from(["step", "approval", "section", "maxIterations", "goto"]))
    if choice == "step":
        spec.setdefault("steps", {})[step] = draw(st.sampled_from([None, 5, "fast", ["timeout"]]))
        return Broken(spec, (f"steps.{step}",), "step settings that are not a mapping")
    if choice == "approval":
        spec.setdefault("steps", {})[step] = {"approval": draw(st.sampled_from(["yes", 1, ["timeout"]]))}
        return Broken(spec, (f"steps.{step}.approval",), "approval settings that are not a mapping")
    if choice == "section":
        section = draw(st.sampled_from(["branch", "diverge"]))
        spec.setdefault(section, {})[step] = draw(st.sampled_from([{}, "goto a", 3, None]))
        return Broken(spec, (f"{section}.{step}",), "rules that are not a list")
    if choice == "maxIterations":
        rule = {"when": "false", "goto": step, "maxIterations": draw(st.sampled_from([0, -3, 10_001, "many", 1.5]))}
        index = _add_rule(spec, "branch", step, rule)
        return Broken(spec, (f"branch.{step}[{index}].maxIterations",), "a maxIterations out of range")
    rule = {"when": "false", "goto": draw(st.sampled_from(["1abc", "a b", "", "x" * 70, 7, ["a"]]))}
    index = _add_rule(spec, "branch", step, rule)
    return Broken(spec, (f"branch.{step}[{index}].goto",), "a goto that is not a step name")


BAD_CEL = ["result.x ==", "(", "1 +", "'unterminated", "a b c", "result..x", "\x00", "🙂", "", "   ", "}{"]


@mutation
def bad_cel(draw: st.DrawFn, spec: Spec) -> Broken:
    source = draw(st.sampled_from(BAD_CEL))
    place = draw(st.sampled_from(["branch", "diverge", "output"]))
    if place == "output":
        if not source.strip():
            source = "1 +"  # an empty output means "no output expression"
        spec["output"] = source
        return Broken(spec, ("output", "CEL"), "an output expression that does not compile")
    step = _pick_step(draw, spec)
    if place == "branch":
        index = _add_rule(spec, "branch", step, {"when": source, "goto": step, "maxIterations": 1})
    else:
        index = _add_rule(spec, "diverge", step, {"when": source, "then": "fail"})
    return Broken(spec, (f"{place}.{step}[{index}].when", "CEL"), "a condition that does not compile")


@mutation
def oversized_cel(draw: st.DrawFn, spec: Spec) -> Broken:
    """Long enough to crash the CEL library (it segfaults on about 20,000 nested operators)."""
    operators = draw(st.sampled_from([3_000, 30_000]))
    source = draw(st.sampled_from(["1" + " + 1" * operators, "result" + ".a" * operators]))
    step = _pick_step(draw, spec)
    index = _add_rule(spec, "branch", step, {"when": source, "goto": step, "maxIterations": 1})
    return Broken(spec, (f"branch.{step}[{index}].when", "characters"), "a condition too long to compile safely")


@mutation
def empty_parallel_group(draw: st.DrawFn, spec: Spec) -> Broken:
    index = draw(st.integers(0, len(spec["timeline"])))
    spec["timeline"].insert(index, [])
    return Broken(spec, (f"timeline[{index}]", "at least one step"), "an empty parallel group")


@mutation
def bad_timeline_name(draw: st.DrawFn, spec: Spec) -> Broken:
    index = draw(st.integers(0, len(spec["timeline"])))
    name = draw(st.sampled_from(["1abc", "a b", "", "x" * 70, "a/b", "ünï"]))
    if draw(st.booleans()):
        spec["timeline"].insert(index, name)
        where = f"timeline[{index}]"
    else:
        spec["timeline"].insert(index, ["zz_ok", name])
        where = f"timeline[{index}][1]"
    return Broken(spec, (where,), "a step name that breaks the naming rule")


@mutation
def missing_field(draw: st.DrawFn, spec: Spec) -> Broken:
    choice = draw(st.sampled_from(["timeline", "when", "goto"]))
    if choice == "timeline":
        del spec["timeline"]
        return Broken(spec, ("timeline", "needs a timeline"), "no timeline")
    step = _pick_step(draw, spec)
    rule = {"when": "false", "goto": step, "maxIterations": 1}
    del rule[choice]
    index = _add_rule(spec, "branch", step, rule)
    if choice == "goto":  # goto or then: neither is required alone, one of them is
        return Broken(
            spec, (f"branch.{step}[{index}]", "needs exactly one of 'goto' or 'then'"), "a branch rule going nowhere"
        )
    return Broken(spec, (f"branch.{step}[{index}].{choice}", "required"), "a branch rule missing a field")


@mutation
def unknown_field(draw: st.DrawFn, spec: Spec) -> Broken:
    step = _pick_step(draw, spec)
    container = draw(
        st.sampled_from([[], ["defaults"], ["defaults", "retry"], ["steps", step], ["steps", step, "approval"]])
    )
    field = draw(st.sampled_from(["bogus", "maxAttemps", "time_out", "Timeline"]))
    where = _put(spec, container, field, draw(st.sampled_from([1, "x", None, {}])))
    return Broken(spec, (where,), "a field the model does not know")


@mutation
def contradictory_diverge_rule(draw: st.DrawFn, spec: Spec) -> Broken:
    step = _pick_step(draw, spec)
    choice = draw(st.sampled_from(["then-and-goto", "neither", "nothing-to-match", "error-and-result"]))
    rules: dict[str, dict[str, Any]] = {
        "then-and-goto": {"match": {"error": {"type": "Boom"}}, "then": "fail", "goto": step, "maxIterations": 1},
        "neither": {"match": {"error": {"type": "Boom"}}},
        "nothing-to-match": {"then": "fail", "match": {}},
        "error-and-result": {"match": {"error": {"type": "Boom"}, "result": {"ok": True}}, "then": "fail"},
    }
    rule = rules[choice]
    index = _add_rule(spec, "diverge", step, rule)
    return Broken(spec, (f"diverge.{step}[{index}]",), "a diverge rule that cannot decide")


BAD_SCHEMAS: list[JSON] = [
    {"type": "foo"},
    {"$schema": 5},
    {"$ref": "#/definitions/missing"},
    {"$ref": "http://127.0.0.1:9/schema.json"},
    {"properties": {"a": {"pattern": "("}}},
    {"minimum": "x"},
    {"required": "region"},
    {"type": "object", "properties": {"a": {"$ref": "#/$defs/nope"}}},
]


@mutation
def bad_input_schema(draw: st.DrawFn, spec: Spec) -> Broken:
    spec["input"] = copy.deepcopy(draw(st.sampled_from(BAD_SCHEMAS)))
    return Broken(spec, ("input",), "an input schema that is not a usable JSON Schema")


def _nested(depth: int) -> JSON:
    value: JSON = {"type": "string"}
    for _ in range(depth):
        value = {"type": "object", "properties": {"a": value}}
    return value


@mutation
def too_deep(draw: st.DrawFn, spec: Spec) -> Broken:
    depth = draw(st.sampled_from([150, 400]))
    if draw(st.booleans()):
        spec["input"] = _nested(depth)
        return Broken(spec, ("input", "deep"), "an input schema nested too deep")
    step = _pick_step(draw, spec)
    result: JSON = 1
    for _ in range(depth):
        result = {"a": result}
    index = _add_rule(spec, "diverge", step, {"match": {"result": result}, "then": "fail"})
    return Broken(spec, (f"diverge.{step}[{index}]", "deep"), "a result pattern nested too deep")


@mutation
def unreachable_step(draw: st.DrawFn, spec: Spec) -> Broken:
    layout = Layout.of(spec)
    if len(layout.positions) < 3:
        spec["timeline"].extend(["zz_x", "zz_y", "zz_z"])
        layout = Layout.of(spec)
    origin = draw(st.integers(0, len(layout.positions) - 3))
    hidden = layout.positions[origin + 1]
    targets = {
        rule.get("goto")
        for section in ("diverge", "branch")
        for rules in spec.get(section, {}).values()
        for rule in rules
    }
    if targets & set(hidden):
        # Something else jumps to the hidden position: hide the first of three new steps instead.
        spec["timeline"].extend(["zz_p", "zz_q", "zz_r"])
        layout = Layout.of(spec)
        origin = len(layout.positions) - 3
        hidden = layout.positions[origin + 1]
    source = layout.positions[origin][0]
    _add_rule(spec, "branch", source, {"when": "true", "goto": layout.positions[origin + 2][0]})
    return Broken(spec, (f"step '{hidden[0]}' is unreachable",), "a step every path jumps over")


NON_JSON_VALUES: list[JSON] = [
    float("nan"),
    float("inf"),
    b"bytes",
    {1, 2},
    (1, "tuple-is-fine-as-a-list"),
    object(),
    "\ud800",
]


@mutation
def not_json(draw: st.DrawFn, spec: Spec) -> Broken:
    """Values YAML or a Python caller can produce that JSON (and the CRD) cannot carry."""
    value = draw(st.sampled_from([v for v in NON_JSON_VALUES if not isinstance(v, tuple)]))
    step = _pick_step(draw, spec)
    place = draw(st.sampled_from(["input", "result", "taskQueue"]))
    if place == "input":
        spec["input"] = {"type": "object", "default": {"x": value}}
        return Broken(spec, ("input.default.x",), "a non-JSON value in the input schema")
    if place == "result":
        index = _add_rule(spec, "diverge", step, {"match": {"result": {"x": value}}, "then": "fail"})
        return Broken(spec, (f"diverge.{step}[{index}].match.result.x",), "a non-JSON value in a result pattern")
    spec["taskQueue"] = value
    return Broken(spec, ("taskQueue",), "a non-JSON task queue")


@st.composite
def invalid_specs(draw: st.DrawFn) -> Broken:
    spec = copy.deepcopy(draw(valid_specs(with_input=False)))
    change = draw(st.sampled_from(MUTATIONS))
    return change(draw, spec)


# -- arbitrary documents ----------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["a", "true", "5m", "result.x ==", "input", "[]", "goto", "retry"]),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(["timeline", "steps", "when", "goto", "a", "retry", "x", ""]), children, max_size=4
        ),
    ),
    max_leaves=25,
)


def _places(node: JSON, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, child in node.items():
            found.extend(_places(child, (*path, key)))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.extend(_places(child, (*path, index)))
    return found


@st.composite
def garbled_specs(draw: st.DrawFn) -> JSON:
    """A valid spec with one node (anywhere, the root included) replaced by arbitrary JSON."""
    spec = copy.deepcopy(draw(valid_specs()))
    path = draw(st.sampled_from(_places(spec)))
    replacement = draw(JSON_VALUES)
    if not path:
        return replacement
    node: Any = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = replacement
    return spec


def is_finite_json(value: JSON) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_finite_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(is_finite_json(v) for v in value)
    return value is None or isinstance(value, str | int | bool)
