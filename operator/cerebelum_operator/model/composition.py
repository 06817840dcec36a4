"""The composition steps' settings, compiled: signal waits, child workflows and continue-as-new.

Each is a built-in step (no worker runs it), so the settings only a worker's task uses are
refused on it by name rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .durations import parse_duration
from .spec import StepSpec

if TYPE_CHECKING:
    from .compile import CelExpression

__all__ = ["ChildStart", "ContinueAsNew", "SignalWait", "builtin_kinds", "compile_composition"]


@dataclass(frozen=True, slots=True)
class SignalWait:
    name: str
    timeout_ms: int | None


@dataclass(frozen=True, slots=True)
class ChildStart:
    workflow: str
    input: CelExpression | None
    on_parent_cancel: Literal["cancel", "abandon"]


@dataclass(frozen=True, slots=True)
class ContinueAsNew:
    input: CelExpression | None


Problem = Callable[[str, str], None]
Cel = Callable[[str, str], "CelExpression | None"]

# What only a worker's task uses, refused on each built-in kind (the retry policy applies to a
# child: a failed child is a failed attempt, and the next attempt starts a new child).
_TASK_ONLY = ("timeout", "heartbeat_timeout", "schedule_to_start_timeout", "task_queue", "function", "args", "for_each")
_REFUSED = {"signal": (*_TASK_ONLY, "retry"), "child": _TASK_ONLY, "continue_as_new": (*_TASK_ONLY, "retry", "set")}


def builtin_kinds(own: StepSpec) -> list[str]:
    """The built-in kinds a step declares (approval, timer, signal, child, continueAsNew)."""
    kinds = ("approval", "timer", "signal", "child", "continue_as_new")
    return [kind for kind in kinds if getattr(own, kind) is not None]


def _camel(name: str) -> str:
    return "".join(part.title() if i else part for i, part in enumerate(name.split("_")))


def compile_composition(
    name: str, own: StepSpec, *, problem: Problem, cel: Cel, handler: bool
) -> tuple[SignalWait | None, ChildStart | None, ContinueAsNew | None]:
    """The step's signal wait, child start and continue-as-new settings (at most one is set)."""
    kinds = builtin_kinds(own)
    if len(kinds) > 1:
        problem(f"steps.{name}", f"a step is one of approval, timer, signal, child or continueAsNew, not {kinds}")
    mine = [kind for kind in kinds if kind in _REFUSED]
    if not mine:
        return None, None, None
    kind = mine[0]
    path = f"steps.{name}.{_camel(kind)}"
    if handler:
        problem(path, "a compensation or finally step runs a worker's task only")
        return None, None, None
    for field_name in _REFUSED[kind]:
        if getattr(own, field_name) is not None:
            problem(
                f"steps.{name}.{_camel(field_name)}",
                f"a {_camel(kind)} step has no task for a worker: it takes no {_camel(field_name)}",
            )
    if own.signal is not None:
        timeout = parse_duration(own.signal.timeout) if own.signal.timeout else None
        return SignalWait(own.signal.name, timeout), None, None
    if own.child is not None:
        source = own.child.input
        program = cel(source, f"{path}.input") if source is not None else None
        return None, ChildStart(own.child.workflow, program, own.child.on_parent_cancel), None
    assert own.continue_as_new is not None
    source = own.continue_as_new.input
    return None, None, ContinueAsNew(cel(source, f"{path}.input") if source is not None else None)
