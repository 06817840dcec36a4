"""Errors that name the problem and its place in the workflow document."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["InputInvalid", "SpecProblem", "WorkflowInvalid", "format_path"]


@dataclass(frozen=True, slots=True)
class SpecProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class WorkflowInvalid(ValueError):
    """The workflow cannot run; every problem found is listed, each with its place."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class InputInvalid(ValueError):
    """An execution's input does not satisfy the workflow's input schema."""


def format_path(parts: tuple[str | int, ...] | list[str | int]) -> str:
    """`branch.check[0].when`: names joined by dots, list positions in brackets."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
