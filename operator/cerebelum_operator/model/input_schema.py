"""The workflow's input schema: checked at apply, validated with linear-time patterns at start.

JSON Schema is the user's own code run on every start: its ``$ref``s must resolve inside it,
may not loop in place or expand past a bound, and its patterns run on RE2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema
from referencing.exceptions import Unresolvable

from .errors import SpecProblem, format_path
from .patterns import MAX_SCHEMA_NODES, pattern_problems, with_linear_patterns

__all__ = ["compile_input_schema"]


def _problem(problems: list[SpecProblem], path: str, message: str) -> None:
    problems.append(SpecProblem(path, message))


def compile_input_schema(schema: dict[str, Any] | None, *, started: bool, problems: list[SpecProblem]) -> Any:
    """The input schema's validator (RE2 patterns), or None; every problem found goes to ``problems``.

    ``started``: the schema of an execution that already started (see ``compile_workflow``):
    its patterns never run again, so RE2's syntax is not required of them.
    """
    if schema is None:
        return None
    dialect = schema.get("$schema")
    if dialect is not None and not isinstance(dialect, str):
        _problem(problems, "input.$schema", "must be a string: the URI of a JSON Schema dialect")
        return None
    try:
        # An unknown dialect means the latest draft, as jsonschema does (without its warning).
        validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        validator_class.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = format_path(["input", *exc.path])
        _problem(problems, where, f"not a valid JSON Schema: {exc.message}")
        return None
    except Exception as exc:  # jsonschema trips on some malformed keywords ($schema: 5)
        _problem(problems, "input", f"not a valid JSON Schema: {type(exc).__name__}: {exc}")
        return None
    refs, graph = _resolve_refs(schema, validator_class)
    for where, message in refs:
        _problem(problems, where, message)
    for where_parts, message in () if started else pattern_problems(schema, ["input"]):
        _problem(problems, format_path(where_parts), message)
    if not refs:
        _schema_size(schema, graph, problems)
    return with_linear_patterns(validator_class)(schema)


def _schema_size(schema: Mapping[str, Any], graph: _SchemaGraph, problems: list[SpecProblem]) -> None:
    """Refuse a schema whose $refs loop in place (endless recursion) or multiply past the bound."""
    state: dict[int, int] = {}  # 1: on the path, 2: done

    def loops(node: int) -> bool:
        state[node] = 1
        for child in graph.in_place.get(node, ()):
            if state.get(child) == 1 or (child not in state and loops(child)):
                return True
        state[node] = 2
        return False

    if any(node not in state and loops(node) for node in list(graph.in_place)):
        _problem(
            problems,
            "input",
            "the input schema's $refs form a loop that never moves into the value (a $ref back to a"
            " schema that contains it, through allOf/anyOf/oneOf/not/if/$ref): validation would never end",
        )
        return
    sizes: dict[int, int] = {}

    def size(node: int) -> int:
        if node not in sizes:
            sizes[node] = 0  # a loop through properties/items is bounded by the value's own depth
            total = 1
            for child in (*graph.in_place.get(node, ()), *graph.nested.get(node, ())):
                total = min(total + size(child), MAX_SCHEMA_NODES + 1)
            sizes[node] = total
        return sizes[node]

    expanded = size(id(schema))
    if expanded > MAX_SCHEMA_NODES:
        _problem(
            problems,
            "input",
            f"the input schema expands to more than {MAX_SCHEMA_NODES:,} subschemas once its $refs are followed"
            f" (the limit): refs that use their target more than once multiply",
        )


# Keywords whose values are data, not schemas: a "$ref" key inside them is not a reference.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})


# Keywords whose subschemas apply to the same value; the others move into a part of it.
_IN_PLACE = frozenset({"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "$ref"})


@dataclass
class _SchemaGraph:
    """Subschema edges by id: those applied to the same value, and those applied to a part of it."""

    in_place: dict[int, list[int]] = field(default_factory=dict)
    nested: dict[int, list[int]] = field(default_factory=dict)


def _resolve_refs(schema: Mapping[str, Any], validator_class: Any) -> tuple[list[tuple[str, str]], _SchemaGraph]:
    """(place, message) for every $ref of the input schema that does not resolve inside it, and its graph.

    Nothing is fetched: a reference to another document cannot be checked, so it is refused
    here rather than failing every execution's start.
    """
    dialect = validator_class.META_SCHEMA.get("$schema", "")
    specification = referencing.jsonschema.specification_with(dialect, default=referencing.jsonschema.DRAFT202012)
    root = "urn:cerebelum:input"
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(
        root, specification.create_resource(schema)
    )
    found: list[tuple[str, str]] = []
    graph = _SchemaGraph()

    def edges(node: Any, key: str | None) -> list[int]:
        return graph.in_place.setdefault(id(node), []) if key in _IN_PLACE else graph.nested.setdefault(id(node), [])

    def walk(node: Any, path: list[str | int], resolver: Any, owner: Any, key: str | None) -> None:
        # resolver: a referencing.Resolver, not exported; owner: the schema this node belongs to
        if isinstance(node, Mapping):
            if owner is not None:
                edges(owner, key).append(id(node))
            if path and isinstance(node.get("$id"), str):
                resolver = resolver.in_subresource(specification.create_resource(node))
            ref = node.get("$ref")
            if isinstance(ref, str):
                try:
                    target = resolver.lookup(ref).contents
                    if isinstance(target, Mapping):
                        edges(node, "$ref").append(id(target))
                except Unresolvable:
                    found.append(
                        (format_path([*path, "$ref"]), f"$ref {ref!r} does not resolve inside the input schema")
                    )
            for child_key, child in node.items():
                if child_key not in _DATA_KEYWORDS:
                    walk(child, [*path, child_key], resolver, node, child_key)
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, [*path, index], resolver, owner, key)

    walk(schema, ["input"], registry.crawl().resolver(base_uri=root), None, None)
    return found, graph
