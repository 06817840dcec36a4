"""The input schema's ``default``s, filled into a new execution's input before it is validated.

jsonschema validates but never fills: this is its documented recipe (extend the validator's
``properties`` keyword to set a missing property's ``default`` before descending into it), so
nested objects get their defaults where the parent is present or was itself filled, and
``$ref``, ``allOf``, ``items`` and ``additionalProperties`` are followed as validation follows
them. Keywords that apply a subschema only when it matches (``anyOf``, ``oneOf``, ``not``,
``if``/``then``/``else``, ``dependentSchemas``, ``dependencies``, ``contains``) are not followed:
filling from a branch the value may not take would change the value's meaning.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema

__all__ = ["DefaultsFiller", "defaults_filler"]

_CONDITIONAL = ("anyOf", "oneOf", "not", "if", "dependentSchemas", "dependencies", "contains")


def _not_followed(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
    return iter(())


class DefaultsFiller:
    """Fills the ``default``s of one input schema (built once per compiled workflow)."""

    __slots__ = ("_validator",)

    def __init__(self, validator: Any) -> None:
        self._validator = validator

    def fill(self, value: Any) -> Any:
        """``value`` with every missing property that has a ``default`` filled in; never changes ``value``.

        Returns ``value`` itself when nothing was missing. Nothing is validated: what the fill
        meets that breaks the schema is reported by the validation that follows.
        """
        if not isinstance(value, dict):
            return value
        filled = copy.deepcopy(value)
        for _ in self._validator.iter_errors(filled):
            pass  # the walk fills; its errors are the validator's to report
        return value if filled == value else filled


def defaults_filler(validator: Any) -> DefaultsFiller | None:
    """The filler for ``validator``'s schema (a jsonschema validator), or None when it has no ``default``."""
    schema = validator.schema
    if not _has_default(schema):
        return None
    validator_class = type(validator)
    follow_properties = validator_class.VALIDATORS["properties"]

    def properties(validator: Any, properties: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if validator.is_type(instance, "object") and isinstance(properties, Mapping):
            for name, subschema in properties.items():
                if isinstance(subschema, Mapping) and "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from follow_properties(validator, properties, instance, schema)

    skipped = {name: _not_followed for name in _CONDITIONAL if name in validator_class.VALIDATORS}
    extend: Any = jsonschema.validators.extend  # untyped in jsonschema's stubs
    filler_class = extend(validator_class, {"properties": properties, **skipped})
    return DefaultsFiller(filler_class(schema))


def _has_default(node: Any) -> bool:
    """True when some subschema has a ``default`` (a property named "default" counts too: harmless)."""
    if isinstance(node, Mapping):
        return "default" in node or any(_has_default(child) for key, child in node.items() if key != "const")
    if isinstance(node, list):
        return any(_has_default(child) for child in node)
    return False
