"""Admission by flow key, and paused workflows (issue 19): who of a key runs, and who waits.

`SlotBook` is the pure core: per (workflow, key), the executions running and those waiting (by
priority, then by when they started to wait), and whom to admit when a slot frees. It reads no
clock and does no I/O; every change is an event from a committed decision.

`FlowControlService` is the glue. It watches the actions of committed decisions (`WaitForFlowSlot`,
`FreeFlowSlot`) and admits the next execution of a key with a `Resume` of the "concurrency" hold,
whose decision marks the slot running in the store (`AdmitFlowSlot`). At start it rebuilds the book
from the store's ``flow_slots``, so after a crash or a kill the count is what was committed, and
what a dead engine was about to admit is admitted again. The book counts an execution as running
from the moment it decides to admit it, before the resume commits: so it never admits past a
limit, and an admission that fails (the execution ended meanwhile) frees the slot for the next.
One engine decides at a time (the store's exclusive claim, the operator's leader lease), which is
what makes the count exact across the cluster.

Engines that split the shards each admit their own executions, and the store has the last word: an
admission that would take a key past its limit, counting every engine's running slots, fails
(`FlowSlotTaken`) and the execution waits on. Each engine's book counts the other engines' running
slots of its keys as taken (``elsewhere``), read again every few seconds with the other shared
settings (`refresh_slots`), which also rebuilds the book from its shards' rows: so executions of
shards it took over are admitted, and a slot another engine freed is seen within those seconds.
Priority orders the waiting executions of one engine; across engines, the one that finds room first.

It also keeps the paused workflows: `EngineService` asks it whether a new execution starts held.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..engine import Reply
from ..engine import actions as act
from ..engine import commands as cmd
from ..engine.command_checks import CommandRejected
from ..engine.flow import CONCURRENCY
from ..store import FlowSlotRow, FlowSlotTaken, StoreError, WorkflowPauseRow
from .clock import Clock
from .database import Database
from .engine_service import EngineService, ExecutionNotFound

__all__ = ["WORKFLOW_PAUSE", "FlowControlService", "SlotBook"]

log = logging.getLogger(__name__)

WORKFLOW_PAUSE = "workflow"  # the source of the hold on an execution started while its workflow is paused
# Who resumed, when an engine learns from the store that another engine lifted the pause.
RESUMED_ELSEWHERE = "the workflow's resume, on another engine"
_RETRY_S = 1.0
_PAGE = 500


@dataclass(slots=True)
class _Line:
    """One key of one workflow: who runs, who waits (a heap of (-priority, since, order, id))."""

    limit: int
    running: set[str] = field(default_factory=set)
    waiting: list[tuple[int, int, int, str]] = field(default_factory=list)
    elsewhere: int = 0  # slots other engines of a split hold (`SlotBook.reconcile`)


class SlotBook:
    """Who runs and who waits per (workflow, key); each call returns the executions to admit now."""

    def __init__(self) -> None:
        self._lines: dict[tuple[str, str], _Line] = {}
        self._line_of: dict[str, tuple[str, str]] = {}
        self._waiting: set[str] = set()
        self._places: dict[str, tuple[int, int]] = {}  # each one's (-priority, since_ms): its place in line
        self._order = 0

    def load(self, rows: Iterable[FlowSlotRow]) -> list[str]:
        """The store's slots (oldest first): the running ones count, the others wait."""
        lines: set[tuple[str, str]] = set()
        for row in rows:
            line = (row.workflow, row.flow_key)
            lines.add(line)
            if row.running:
                self._run(row.execution_id, line, row.limit)
            else:
                self._wait(row.execution_id, line, priority=row.priority, limit=row.limit, since_ms=row.since_ms)
        return [admitted for line in sorted(lines) for admitted in self._fill(line)]

    def waiting(
        self, execution_id: str, *, workflow: str, key: str, priority: int, limit: int, since_ms: int
    ) -> list[str]:
        """The execution waits for a slot (a start, a redrive)."""
        line = (workflow, key)
        self._wait(execution_id, line, priority=priority, limit=limit, since_ms=since_ms)
        return self._fill(line)

    def reconcile(
        self, rows: Iterable[FlowSlotRow], running: Mapping[tuple[str, str], int], admitting: Collection[str]
    ) -> list[str]:
        """On a split: the book anew from the store, which holds this engine's executions' ``rows`` and
        every engine's ``running`` slots per key; those ``admitting`` (their admission not committed
        yet) count as running. Whom to admit now."""
        self._lines.clear()
        self._line_of.clear()
        self._waiting.clear()
        self._places.clear()
        committed: dict[tuple[str, str], int] = {}
        for row in rows:
            line = (row.workflow, row.flow_key)
            if row.running:
                committed[line] = committed.get(line, 0) + 1
            if row.running or row.execution_id in admitting:
                self._run(row.execution_id, line, row.limit)
                if not row.running:  # its admission may still be refused (`taken`): its place is kept
                    self._places[row.execution_id] = (-row.priority, row.since_ms)
            else:
                self._wait(row.execution_id, line, priority=row.priority, limit=row.limit, since_ms=row.since_ms)
        for line, held in self._lines.items():
            held.elsewhere = max(0, running.get(line, 0) - committed.get(line, 0))
        return [admitted for line in sorted(self._lines) for admitted in self._fill(line)]

    def taken(self, execution_id: str) -> None:
        """The store refused its admission (`FlowSlotTaken`): back to its place in line, and its key has
        no room here until the next `reconcile` says what the other engines hold."""
        line = self._line_of.get(execution_id)
        place = self._places.get(execution_id)
        if line is None or place is None or execution_id not in self._lines[line].running:
            return
        held = self._lines[line]
        held.running.discard(execution_id)
        held.elsewhere = max(held.elsewhere, held.limit - len(held.running))
        self._waiting.add(execution_id)
        self._order += 1
        heapq.heappush(held.waiting, (*place, self._order, execution_id))

    def gone(self, execution_id: str) -> list[str]:
        """It ended, or its admission failed: its slot, or its place in line, goes to the next."""
        line = self._line_of.pop(execution_id, None)
        self._places.pop(execution_id, None)
        if line is None:
            return []
        self._lines[line].running.discard(execution_id)
        self._waiting.discard(execution_id)  # its heap entry is skipped when it comes up
        return self._fill(line)

    def running(self, workflow: str, key: str) -> frozenset[str]:
        line = self._lines.get((workflow, key))
        return frozenset(line.running) if line is not None else frozenset()

    def waiting_count(self, workflow: str, key: str) -> int:
        line = self._lines.get((workflow, key))
        return 0 if line is None else sum(1 for *_, e in line.waiting if e in self._waiting)

    def _run(self, execution_id: str, line: tuple[str, str], limit: int) -> None:
        self._line_of[execution_id] = line
        self._lines.setdefault(line, _Line(limit)).running.add(execution_id)

    def _wait(self, execution_id: str, line: tuple[str, str], *, priority: int, limit: int, since_ms: int) -> None:
        known = self._line_of.get(execution_id)
        if known is not None and (execution_id in self._waiting or execution_id in self._lines[known].running):
            return  # told twice (the store's rows and a decision): once is what counts
        held = self._lines.setdefault(line, _Line(limit))
        held.limit = limit  # the latest start's: a workflow whose limit changed applies the new one
        self._line_of[execution_id] = line
        self._waiting.add(execution_id)
        self._places[execution_id] = (-priority, since_ms)
        self._order += 1
        heapq.heappush(held.waiting, (-priority, since_ms, self._order, execution_id))

    def _fill(self, line: tuple[str, str]) -> list[str]:
        held = self._lines[line]
        admitted = []
        while held.waiting and len(held.running) + held.elsewhere < held.limit:
            *_, execution_id = heapq.heappop(held.waiting)
            if execution_id not in self._waiting:
                continue
            self._waiting.discard(execution_id)
            held.running.add(execution_id)
            admitted.append(execution_id)
        if not held.running and not held.waiting and not held.elsewhere:
            del self._lines[line]
        return admitted


class FlowControlService:
    """Admits waiting executions as slots free, and keeps the paused workflows (see the module)."""

    def __init__(self, db: Database, engine: EngineService, *, clock: Clock) -> None:
        self.db = db
        self.engine = engine
        self.clock = clock
        self.book = SlotBook()
        self._paused: dict[str, WorkflowPauseRow] = {}
        # A pause, a resume and a refresh one at a time: a refresh that read the store just before a
        # pause was written would otherwise drop it here, and resume what it had just begun to hold.
        self._pausing = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._admitting: set[str] = set()  # admissions decided here and not committed yet
        self._stopping = False

    async def start(self) -> None:
        self._paused = {row.workflow: row for row in await self.db.run(self.db.store.list_workflow_pauses)}
        self.engine.add_listener(self.on_actions)
        self.engine.set_workflow_pauses(self.pause_of)
        if self.engine.split:
            await self.refresh_slots()  # its shards' executions only, and the others' running slots
        else:
            self._admit(self.book.load(await self.db.run(self.db.store.list_flow_slots)))

    async def refresh_slots(self) -> None:
        """Engines that split the shards: rebuild the book from the store (this engine's shards' slots,
        every engine's running ones per key) and admit whom it now has room for."""
        rows, running = await self.db.run(self.db.store.flow_slots_here)
        self._admit(self.book.reconcile(rows, running, self._admitting))

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def on_actions(self, execution_id: str, workflow: str, actions: Sequence[act.Action]) -> None:
        for action in actions:
            match action:
                case act.WaitForFlowSlot():
                    self._admit(
                        self.book.waiting(
                            execution_id,
                            workflow=workflow,
                            key=action.flow_key,
                            priority=action.priority,
                            limit=action.limit,
                            since_ms=self.clock.now_ms(),
                        )
                    )
                case act.FreeFlowSlot():
                    self._admit(self.book.gone(execution_id))

    # -- paused workflows ---------------------------------------------------------------------

    def pause_of(self, workflow: str) -> WorkflowPauseRow | None:
        """The pause a new execution of ``workflow`` starts held by; None when it is not paused."""
        return self._paused.get(workflow)

    def paused_workflows(self) -> list[WorkflowPauseRow]:
        return sorted(self._paused.values(), key=lambda row: row.workflow)

    async def pause_workflow(self, workflow: str, *, reason: str, by: str) -> WorkflowPauseRow:
        """New executions of ``workflow`` start held; those already running go on."""
        async with self._pausing:
            row = await self.db.run(
                lambda: self.db.store.put_workflow_pause(workflow, reason=reason, by=by, now_ms=self.clock.now_ms())
            )
            self._paused[workflow] = row
        return row

    async def resume_workflow(self, workflow: str, *, by: str) -> int:
        """Lift the workflow's pause and resume every execution it held (of this engine's shards, when
        engines split them: each resumes its own); how many were resumed."""
        async with self._pausing:
            await self.db.run(self.db.store.delete_workflow_pause, workflow)
            self._paused.pop(workflow, None)
        return await self._resume_held(workflow, by=by)

    async def refresh_pauses(self) -> tuple[str, ...]:
        """Take the pauses the store holds now (engines that split the shards: another may have paused
        or resumed a workflow); a pause gone from it resumes what it held here. The workflows changed."""
        async with self._pausing:
            rows = {row.workflow: row for row in await self.db.run(self.db.store.list_workflow_pauses)}
            lifted = sorted(set(self._paused) - set(rows))
            changed = sorted(lifted + [name for name in rows if name not in self._paused])
            self._paused = rows
        for workflow in lifted:
            await self._resume_held(workflow, by=RESUMED_ELSEWHERE)
        return tuple(changed)

    async def _resume_held(self, workflow: str, *, by: str) -> int:
        resumed, after = 0, ""
        while True:
            page = await self.db.run(self._held_page, workflow, after)
            for execution_id in page:  # of this engine's shards only, when engines split them: each resumes its own
                try:
                    decision = await self.engine.handle(execution_id, cmd.Resume(by, source=WORKFLOW_PAUSE))
                except (CommandRejected, ExecutionNotFound):
                    continue
                resumed += decision.reply == Reply.ACCEPTED
            if len(page) < _PAGE:
                return resumed
            after = page[-1]

    def _held_page(self, workflow: str, after: str) -> list[str]:
        return self.db.store.held_executions(workflow, after_id=after, limit=_PAGE)

    # -- admission ----------------------------------------------------------------------------

    def _admit(self, execution_ids: list[str]) -> None:
        for execution_id in execution_ids:
            if execution_id in self._admitting:
                continue
            self._admitting.add(execution_id)
            task = asyncio.get_running_loop().create_task(self._resume(execution_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _resume(self, execution_id: str) -> None:
        try:
            await self._resume_until_decided(execution_id)
        finally:
            self._admitting.discard(execution_id)

    async def _resume_until_decided(self, execution_id: str) -> None:
        while not self._stopping:
            try:
                decision = await self.engine.handle(execution_id, cmd.Resume("flow control", source=CONCURRENCY))
            except FlowSlotTaken as taken:  # engines that split the shards: another one's admissions filled it
                log.info("admission of %s waits: %s", execution_id, taken)
                self.book.taken(execution_id)
                return
            except (CommandRejected, ExecutionNotFound) as refused:
                log.info("admission of %s refused (%s): its slot goes to the next", execution_id, refused)
                self._admit(self.book.gone(execution_id))
                return
            except StoreError as error:  # a database outage: keep the slot and try again
                log.warning("admission of %s failed (%s); trying again", execution_id, error)
                await self.clock.sleep(_RETRY_S)
                continue
            if decision.reply != Reply.ACCEPTED and decision.state is not None and decision.state.phase.terminal:
                self._admit(self.book.gone(execution_id))  # it ended before its turn came
            return
