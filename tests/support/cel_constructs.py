"""A workflow whose one CEL expression is of a given construct (a key of EXPRESSION_VARIABLES)."""

from __future__ import annotations

from typing import Any

__all__ = ["expression_spec"]


def expression_spec(
    construct: str, source: str, *, timeline: list[str], on: str, reached: str, target: str
) -> dict[str, Any]:
    """``source`` placed as ``construct``: a rule or ``set`` on step ``on``, a ``when``, ``args`` or
    ``timer.until``, ``forEach.items``, a forEach step's ``args`` or a child's ``input`` of step ``reached``, a branch jumping to ``target``, or the ``output``."""
    spec: dict[str, Any] = {"timeline": timeline}
    if construct == "branch":
        spec["branch"] = {on: [{"when": source, "goto": target}]}
    elif construct == "diverge":
        spec["diverge"] = {on: [{"when": source, "then": "continue"}]}
    elif construct == "timer":
        spec["steps"] = {reached: {"timer": {"until": source}}}
    elif construct == "when":
        spec["steps"] = {reached: {"when": source}}
    elif construct == "args":
        spec["steps"] = {reached: {"args": {"seen": source}}}
    elif construct == "items":
        spec["steps"] = {reached: {"forEach": {"items": source}}}
    elif construct == "itemArgs":
        spec["steps"] = {reached: {"forEach": {"items": "[1]"}, "args": {"seen": source}}}
    elif construct == "startInput":  # a child's input (a continueAsNew step's is alike)
        spec["steps"] = {reached: {"child": {"workflow": "other", "input": source}}}
    elif construct == "flowControl":  # a condition made a priority
        spec["flowControl"] = {"priority": f"({source}) ? 1 : 0"}
    elif construct == "set":
        spec["vars"] = {"seen": None}
        spec["steps"] = {on: {"set": {"seen": source}}}
    else:
        assert construct == "output", construct
        spec["output"] = source
    return spec
