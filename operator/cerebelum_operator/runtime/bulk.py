"""One operator action on many executions: cancel, pause, resume or redrive what a query matches.

Each execution is its own command through `EngineService.handle`, in turn: one that cannot take
the action (it ended, or has no dead letter) is reported with the reason and the others go on.
Nothing is all-or-nothing, as in `kubectl delete -l`: a half-done bulk action is visible in its
outcomes and safe to run again (every action is idempotent per execution).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from ..engine import ExecutionPhase, Reply
from ..engine import commands as cmd
from ..engine.command_checks import CommandRejected
from .engine_service import EngineService, ExecutionNotFound

__all__ = ["DEFAULT_BULK_LIMIT", "MAX_BULK_LIMIT", "BulkAction", "BulkOutcome", "BulkQuery", "run_bulk", "select"]

DEFAULT_BULK_LIMIT = 1_000
MAX_BULK_LIMIT = 10_000


class BulkAction(StrEnum):
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    REDRIVE = "redrive"


@dataclass(frozen=True, slots=True)
class BulkQuery:
    """Which executions: ``ids``, or the newest ``limit`` of a workflow and/or phase (``everything``: no filter)."""

    ids: tuple[str, ...] = ()
    workflow: str | None = None
    phase: str | None = None
    everything: bool = False
    limit: int = DEFAULT_BULK_LIMIT

    def problem(self) -> str | None:
        if self.ids and (self.workflow or self.phase or self.everything):
            return "give execution ids or a query (workflow, phase), not both"
        if not self.ids and not (self.workflow or self.phase or self.everything):
            return "give execution ids, a workflow or a phase; acting on every execution needs 'all'"
        if not 0 < self.limit <= MAX_BULK_LIMIT:
            return f"limit must be between 1 and {MAX_BULK_LIMIT:,}"
        if len(self.ids) > self.limit:
            return f"{len(self.ids):,} ids given, over the limit of {self.limit:,}"
        return None


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    execution_id: str
    result: Literal["done", "unchanged", "failed"]
    error: str = ""


async def select(engine: EngineService, query: BulkQuery) -> tuple[list[str], bool]:
    """The ids the query names, newest first, and whether more matched than its limit."""
    if query.ids:
        return list(dict.fromkeys(query.ids)), False
    rows = await engine.list_executions(workflow=query.workflow, phase=query.phase, limit=query.limit + 1)
    return [row.execution_id for row in rows[: query.limit]], len(rows) > query.limit


async def run_bulk(
    engine: EngineService, action: BulkAction, ids: Sequence[str], *, reason: str, by: str
) -> list[BulkOutcome]:
    """Apply ``action`` to each execution in turn; every outcome is reported, none stops the rest."""
    outcomes = []
    for execution_id in ids:
        try:
            changed = await _apply(engine, action, execution_id, reason=reason, by=by)
        except (CommandRejected, ExecutionNotFound, LookupError, ValueError) as exc:
            outcomes.append(BulkOutcome(execution_id, "failed", str(exc)))
            continue
        outcomes.append(BulkOutcome(execution_id, "done" if changed else "unchanged"))
    return outcomes


async def _apply(engine: EngineService, action: BulkAction, execution_id: str, *, reason: str, by: str) -> bool:
    match action:
        case BulkAction.CANCEL:
            command: cmd.Command = cmd.Cancel(reason or "cancelled")
        case BulkAction.PAUSE:
            row = await engine.get_execution(execution_id)
            if row is not None and ExecutionPhase(row.phase).terminal:
                return False  # a query for a workflow matches its ended executions too
            command = cmd.Pause(reason, by)
        case BulkAction.RESUME:
            command = cmd.Resume(by)
        case BulkAction.REDRIVE:
            letters = await engine.list_dead_letters(execution_id=execution_id)
            if not letters:
                if await engine.get_execution(execution_id) is None:
                    raise await engine.missing(execution_id)
                return False
            for letter in letters:
                await engine.redrive(execution_id, letter.dead_letter_id)
            return True
    decision = await engine.handle(execution_id, command)
    return decision.reply == Reply.ACCEPTED
