"""Reset to a step: where a new run starts, and what it keeps of the old one (issue 19).

Like DBOS's fork and Temporal's reset, a reset is a *new* execution: it starts at a step of the
timeline, and the steps before it are not run again — their results, phases and the workflow's
variables are carried as the old run had them when its timeline last reached that step's
position. Found by folding the old history once to the event that moved the timeline onto the
position, then folding that prefix; both are O(events).

The new run uses the workflow's current spec (a fix is the usual reason to reset), so the steps
before the reset point must be the same as when the old run passed them. Code workflows are
refused: their code decides what comes next, so a point in the timeline has no meaning there.
"""

from __future__ import annotations

from ..model import WorkflowDefinition
from .command_checks import CommandRejected
from .commands import ResetPoint
from .events import RecordedEvent
from .state import ExecutionState, apply_event, fold

__all__ = ["ResetPoint", "reset_point"]


def reset_point(
    *,
    execution_id: str,
    ran_on: WorkflowDefinition,
    history: list[RecordedEvent],
    current: WorkflowDefinition,
    step: str,
) -> ResetPoint:
    """The reset point of ``step`` in the history of ``execution_id`` (which ran on ``ran_on``).

    Raises `CommandRejected`, naming the problem, when the step cannot be reset to.
    """
    if ran_on.is_code or current.is_code:
        raise CommandRejected(
            f"execution {execution_id!r} is a code workflow: its code decides its steps, so it cannot be reset to"
            " one; start a new execution instead"
        )
    if step not in current.steps or current.steps[step].position < 0:
        raise CommandRejected(f"reset: {step!r} is not a step of the workflow's timeline")
    position = current.position_of(step)
    if ran_on.positions[:position] != current.positions[:position]:
        raise CommandRejected(
            f"reset: the workflow's timeline before {step!r} changed since execution {execution_id!r} ran; a reset"
            " runs on the current spec and keeps the results of the steps before the step, so those must be the same"
        )
    moved_on = _last_arrival(ran_on, execution_id, history, position)
    if moved_on is None:
        raise CommandRejected(
            f"reset: execution {execution_id!r} never reached step {step!r}; reset to a step it reached"
        )
    before = fold(ran_on, execution_id, history[:moved_on])
    earlier = [name for members in current.positions[:position] for name in members]
    phases = {}
    for name in earlier:
        shown = before.steps.get(name)
        if shown is None or not shown.settled:
            raise CommandRejected(f"reset: step {name!r} before {step!r} had not settled when the run reached {step!r}")
        phases[name] = shown.phase.value
    return ResetPoint(
        from_id=execution_id,
        step=step,
        results={name: before.results[name] for name in earlier if name in before.results},
        phases=phases,
        vars=dict(before.vars) if current.variables else None,
    )


def _last_arrival(
    definition: WorkflowDefinition, execution_id: str, history: list[RecordedEvent], position: int
) -> int | None:
    """The index of the last event that moved the timeline from before ``position`` onto it or past it."""
    state = ExecutionState(execution_id=execution_id)
    found = None
    for index, recorded in enumerate(history):
        was = state.position
        apply_event(state, definition, recorded)
        if was < position <= state.position:
            found = index
    return found
