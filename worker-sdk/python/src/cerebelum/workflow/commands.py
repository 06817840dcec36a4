"""Commands as the protocol defines them: which field defines each, and how two are compared on replay."""

from __future__ import annotations

from typing import Any

__all__ = ["DEFINING_FIELD", "TERMINAL_TYPES", "describe", "first_difference", "same_command"]

DEFINING_FIELD = {"step": "function", "approval": "name", "waitSignal": "name", "child": "workflow", "patch": "patch"}
"""The field that, with ``id`` and ``type``, identifies a command on replay."""

TERMINAL_TYPES = frozenset({"complete", "fail", "continueAsNew", "cancelled"})
"""Commands that end the execution; they come last."""


def same_command(issued: dict[str, Any], recorded: dict[str, Any]) -> bool:
    kind = issued.get("type")
    if kind != recorded.get("type") or issued.get("id") != recorded.get("id"):
        return False
    field = DEFINING_FIELD.get(str(kind))
    return field is None or issued.get(field) == recorded.get(field)


def first_difference(issued: list[dict[str, Any]], recorded: list[dict[str, Any]]) -> int | None:
    """The index of the first command that differs (or is missing on one side), ``None`` when they agree."""
    for index in range(max(len(issued), len(recorded))):
        if index >= len(issued) or index >= len(recorded) or not same_command(issued[index], recorded[index]):
            return index
    return None


def describe(command: dict[str, Any] | None) -> str:
    """``step #3 'charge'``: a command, in an error message."""
    if command is None:
        return "no command"
    kind = str(command.get("type"))
    text = kind if command.get("id") is None else f"{kind} #{command.get('id')}"
    field = DEFINING_FIELD.get(kind)
    if field is not None:
        text += f" {command.get(field)!r}"
    return text
