"""Evaluating the workflow's CEL expressions, with errors that name the rule."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import cel

from ..model import CelExpression
from ..model.cel_cost import MAX_CEL_COST, data_bounds

__all__ = ["ExpressionError", "evaluate", "evaluate_condition", "to_json"]


class ExpressionError(Exception):
    """A CEL expression failed at run time (a missing field, a wrong type)."""


def evaluate(program: CelExpression, variables: dict[str, Any], *, where: str) -> Any:
    """Run an expression, or refuse it when its worst case on these variables is over the budget.

    The CEL library evaluates synchronously with no limit of its own, so the bound is checked
    first, from the sizes of the variables it reads (deterministic, so a replay decides alike).
    """
    # Only the variables it names: the library converts every value it is given, at a cost of its own.
    variables = {name: value for name, value in variables.items() if name in program.variables}
    # A static cost over the limit reaches here only from an execution that started under an older
    # release (compile_workflow(started=True)): refused here like any other.
    if program.cost.depends_on_data or program.cost.static_cost > MAX_CEL_COST:
        bounds = data_bounds(variables.values())
        cost = program.cost.estimate(bounds)
        if cost > MAX_CEL_COST:
            raise ExpressionError(
                f"{where}: CEL expression {program.source!r} was not run: its estimated cost {cost:,} on this"
                f" data (lists up to {bounds.length:,} items, strings up to {bounds.chars:,} characters) exceeds"
                f" the limit {MAX_CEL_COST:,}"
            )
    try:
        return program.program.execute(variables)
    except Exception as exc:  # the CEL runtime raises several unrelated types
        detail = str(exc) or type(exc).__name__
        raise ExpressionError(f"{where}: CEL expression {program.source!r} failed: {detail}") from None


def evaluate_condition(program: CelExpression, variables: dict[str, Any], *, where: str) -> bool:
    value = evaluate(program, variables, where=where)
    if not isinstance(value, bool):
        raise ExpressionError(f"{where}: CEL condition {program.source!r} gave {value!r}, not true or false")
    return value


def to_json(value: Any, *, where: str) -> Any:
    """A CEL value as JSON, the way protobuf's JSON mapping writes it.

    Timestamps become RFC 3339 text, durations seconds (``"90.5s"``), bytes base64, map keys
    text; an optional its value or null. NaN and infinities have no JSON form: an error.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError(f"{where}: CEL gave {value}, which JSON cannot carry")
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return f"{value.total_seconds():.6f}".rstrip("0").rstrip(".") + "s"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {_json_key(key): to_json(item, where=where) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item, where=where) for item in value]
    if isinstance(value, cel.OptionalValue):
        return to_json(value.value(), where=where) if value.has_value() else None
    raise ExpressionError(f"{where}: CEL gave a {type(value).__name__}, which has no JSON form")


def _json_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)
