"""Evaluating the workflow's CEL expressions, with errors that name the rule."""

from __future__ import annotations

from typing import Any

import cel

__all__ = ["ExpressionError", "evaluate"]


class ExpressionError(Exception):
    """A CEL expression failed at run time (a missing field, a wrong type)."""


def evaluate(program: cel.Program, variables: dict[str, Any], *, where: str) -> Any:
    try:
        return program.execute(variables)
    except Exception as exc:  # the CEL runtime raises several unrelated types
        detail = str(exc) or type(exc).__name__
        raise ExpressionError(f"{where}: CEL expression {program.source!r} failed: {detail}") from None


def evaluate_condition(program: cel.Program, variables: dict[str, Any], *, where: str) -> bool:
    value = evaluate(program, variables, where=where)
    if not isinstance(value, bool):
        raise ExpressionError(f"{where}: CEL condition {program.source!r} gave {value!r}, not true or false")
    return value
