"""Errors that name the problem and its place in the workflow document."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_LISTED_PROBLEMS", "MAX_MESSAGE_CHARS", "InputInvalid", "SpecProblem", "WorkflowInvalid", "format_path"]


@dataclass(frozen=True, slots=True)
class SpecProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


# What the message lists: it ends up in a terminal, a gRPC status and a Workflow's condition, so
# a spec with thousands of bad rules must not make a message of hundreds of KiB.
MAX_LISTED_PROBLEMS = 50
MAX_MESSAGE_CHARS = 16 * 1024


class WorkflowInvalid(ValueError):
    """The workflow cannot run; the problems found are listed, each with its place.

    ``problems`` holds all of them; the message lists the first ``MAX_LISTED_PROBLEMS`` (fewer
    when they would pass ``MAX_MESSAGE_CHARS``) and counts the rest.
    """

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        super().__init__(_listing(problems))


def _listing(problems: list[SpecProblem]) -> str:
    listed: list[str] = []
    length = 0
    for problem in problems[:MAX_LISTED_PROBLEMS]:
        text = str(problem)
        if listed and length + len(text) > MAX_MESSAGE_CHARS:
            break
        listed.append(text[:MAX_MESSAGE_CHARS])
        length += len(text) + 2
    rest = len(problems) - len(listed)
    more = f"; and {rest} more problem{'s' if rest > 1 else ''}" if rest else ""
    return "; ".join(listed) + more


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
