"""Input-schema regexes on a linear-time engine (RE2), so no pattern can freeze the engine.

jsonschema matches `pattern` and `patternProperties` with Python's backtracking `re`:
`^(a+)+$` against 29 characters took 13 s on the event loop, doubling with each character.
The validator class is extended to match with RE2 instead, whose time is linear in the input,
and a pattern RE2 cannot compile (backreferences, lookaround) is refused when the workflow is
applied. `unevaluatedProperties` consults `patternProperties` through jsonschema's own helper,
which we cannot redirect, so a schema that uses both is refused too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import jsonschema
import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

__all__ = ["MAX_SCHEMA_NODES", "pattern_problems", "with_linear_patterns"]

# Subschemas the validator may visit for one value, counting each $ref as a copy of its target:
# refs to refs that each use their target twice grow as 2^depth, a denial of service of its own.
MAX_SCHEMA_NODES = 10_000
# Keywords whose values are data, not schemas.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported as a problem, not on stderr
    return options


_OPTIONS = _options()


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    return re2.compile(pattern, options=_OPTIONS)


def _search(pattern: str, text: str) -> bool:
    return _compiled(pattern).search(text) is not None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        key for key in instance if key not in properties and not any(_search(pattern, key) for pattern in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        listed = ", ".join(repr(each) for each in sorted(extras))
        if patterns:
            yield jsonschema.ValidationError(
                f"{listed} {'does' if len(extras) == 1 else 'do'} not match any of the regexes:"
                f" {', '.join(repr(each) for each in sorted(patterns))}"
            )
        else:
            yield jsonschema.ValidationError(
                f"Additional properties are not allowed ({listed} {'was' if len(extras) == 1 else 'were'} unexpected)"
            )


def with_linear_patterns(validator_class: Any) -> Any:
    """The validator class with pattern, patternProperties and additionalProperties on RE2."""
    keywords = {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    }
    present = {name: check for name, check in keywords.items() if name in validator_class.VALIDATORS}
    extend: Any = jsonschema.validators.extend  # untyped in jsonschema's stubs
    return extend(validator_class, present)


def pattern_problems(schema: Any, path: list[str | int]) -> list[tuple[list[str | int], str]]:
    """(place, message) for every regex RE2 cannot compile, and for patterns it cannot apply."""
    found: list[tuple[list[str | int], str]] = []
    uses = {"patternProperties": False, "unevaluatedProperties": False}

    def check(pattern: str, where: list[str | int]) -> None:
        try:
            _compiled(pattern)
        except re2.error as exc:
            detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            found.append(
                (
                    where,
                    f"regex {pattern!r} is not supported: {detail} (patterns run on RE2, a linear-time engine"
                    " without backreferences or lookaround)",
                )
            )

    def walk(node: Any, where: list[str | int]) -> None:
        if isinstance(node, Mapping):
            for key, child in node.items():
                if key in _DATA_KEYWORDS:
                    continue
                if key == "pattern" and isinstance(child, str):
                    check(child, [*where, key])
                elif key == "patternProperties" and isinstance(child, Mapping):
                    uses["patternProperties"] = True
                    for pattern in child:
                        check(pattern, [*where, key, pattern])
                elif key == "unevaluatedProperties":
                    uses["unevaluatedProperties"] = True
                walk(child, [*where, key])
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, [*where, index])

    walk(schema, path)
    if all(uses.values()):
        found.append(
            (
                path,
                "unevaluatedProperties cannot be used together with patternProperties: the validator would match"
                " those patterns with a backtracking regex engine; use additionalProperties instead",
            )
        )
    return found
