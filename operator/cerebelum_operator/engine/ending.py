"""How an execution ends when it has compensation or finally steps: pure functions `decide` uses.

The plan (which handlers, in which order) is computed once and recorded in `ExecutionEnding`;
`next_handler` reads where the handlers stand from the state; `terminal_event` is the event that
ends the execution once they all ran. `decide` only glues them to scheduling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model import WorkflowDefinition
from . import events as ev
from .state import Ending, ExecutionPhase, ExecutionState, StepPhase

__all__ = ["Concluded", "Schedule", "Wait", "next_handler", "plan", "terminal_event"]


def plan(definition: WorkflowDefinition, state: ExecutionState, outcome: ExecutionPhase) -> tuple[list[str], int]:
    """(handlers, how many are compensations): the compensations of the completed steps, latest
    first, unless the execution succeeded; then the finally steps."""
    compensations = []
    if outcome != ExecutionPhase.SUCCEEDED:
        for step in reversed(state.completed):
            handler = definition.steps[step].compensate
            if handler is not None:
                compensations.append(handler)
    return [*compensations, *definition.finally_steps], len(compensations)


@dataclass(frozen=True, slots=True)
class Schedule:
    """The next handler has not started: schedule it."""

    step: str


@dataclass(frozen=True, slots=True)
class Wait:
    """A handler runs, retries or waits: nothing to do until it settles."""


@dataclass(frozen=True, slots=True)
class Concluded:
    """Every handler ran; ``failures`` says which failed for good."""

    failures: tuple[str, ...]


def next_handler(state: ExecutionState, ending: Ending) -> Schedule | Wait | Concluded:
    """Handlers run one at a time, in the planned order; one that failed for good is passed."""
    failures = []
    for index, name in enumerate(ending.handlers):
        live = state.steps.get(name)
        if live is None or live.phase == StepPhase.PENDING:
            return Schedule(name)
        if live.phase == StepPhase.FAILED:
            kind = "compensation" if index < ending.compensations else "finally step"
            failures.append(f"{kind} {name!r} failed: {live.last_error}")
        elif live.phase != StepPhase.SUCCEEDED or name in state.sleeps:
            return Wait()
    return Concluded(tuple(failures))


def terminal_event(ending: Ending, failures: tuple[str, ...]) -> ev.Event:
    """The event that ends the execution as planned; a handler that failed for good is said."""
    after = "; ".join(failures)
    if ending.outcome == ExecutionPhase.SUCCEEDED:
        if failures:
            return ev.ExecutionFailed(f"the execution succeeded, but its {after}", None)
        output: Any = ending.output
        return ev.ExecutionSucceeded(output, ending.rule)
    if ending.outcome == ExecutionPhase.CANCELLED:
        reason = ending.reason or "cancelled"
        return ev.ExecutionCancelled(f"{reason}; then its {after}" if failures else reason)
    reason = ending.reason or "failed"
    return ev.ExecutionFailed(f"{reason}; then its {after}" if failures else reason, ending.step)
