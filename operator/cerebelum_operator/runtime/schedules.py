"""The schedule service: the pure core (`engine.schedules`) on the store, the engine and the clock.

It is also the one door to schedules for the layers above (the API, and the `Schedule`
reconciler, which calls `put` and `delete` with keys ``namespace/name``), as `EngineService`
is for workflows and executions: every write is serialised per schedule here, so a fire and a
pause never race, and the store's revision check catches anything else.

Schedules are few (one per recurring job, not one per execution), so all of them are held in
memory; the service sleeps on the clock until the earliest wake-up time, woken early by a
change (a new or changed schedule, or the end of an execution a buffered fire waits for).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..engine import CommandRejected, ExecutionPhase, ExecutionState
from ..engine import commands as cmd
from ..engine.schedule_spec import MAX_NOTE, ScheduleSpec, check_schedule_key
from ..engine.schedules import Cancel, Plan, ScheduleState, Start, next_fire, plan, start_failed, trigger
from ..model.limits import cut_middle
from ..store import ScheduleRow, StoreError
from .clock import Clock
from .database import Database
from .engine_service import EngineService, ExecutionConflict, ExecutionNotFound, WorkflowNotFound
from .wakeup import Wakeup

__all__ = ["Listener", "ScheduleInvalid", "ScheduleNotFound", "ScheduleService", "ScheduleView", "parse_spec"]

Change = Callable[[ScheduleSpec, ScheduleState, int], tuple[ScheduleSpec, ScheduleState]]
#: Told of every schedule written (a fire, a skip, a put, a pause...), with its view, after the write.
Listener = Callable[["ScheduleView"], None]

log = logging.getLogger(__name__)

_RETRY_MS = 1_000  # after the store or the engine failed mid-fire: try the same plan again soon
_WRITE_ATTEMPTS = 5


class ScheduleNotFound(LookupError):
    pass


class ScheduleInvalid(ValueError):
    """A schedule spec or name that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class ScheduleView:
    """A schedule as callers see it: its spec, the core's state, and when it fires next."""

    key: str
    spec: ScheduleSpec
    state: ScheduleState
    next_due_ms: int | None
    next_fire_at_ms: int | None
    revision: int
    created_at_ms: int
    updated_at_ms: int


def parse_spec(document: Any) -> ScheduleSpec:
    """A spec from its JSON document; ScheduleInvalid naming each bad field."""
    try:
        return ScheduleSpec.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in problem['loc']) or 'spec'}: {problem['msg'].removeprefix('Value error, ')}"
            for problem in error.errors()
        )
        raise ScheduleInvalid(f"schedule spec is not valid: {problems}") from None


class ScheduleService:
    def __init__(self, db: Database, engine: EngineService, *, clock: Clock) -> None:
        self.db = db
        self.engine = engine
        self.clock = clock
        self._wake_at: dict[str, int | None] = {}  # every schedule, with when it wants planning
        self._waits_for: dict[str, str] = {}  # execution id -> schedule whose buffered fire waits for it
        self._locks: dict[str, asyncio.Lock] = {}
        self._wakeup = Wakeup(clock=clock)
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Listener] = []
        engine.add_change_listener(self._on_change)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(view)`` after each write of a schedule (synchronously: it must not block)."""
        self._listeners.append(listener)

    def _written(self, row: ScheduleRow) -> ScheduleRow:
        if self._listeners:
            view = self._view(row)
            for listener in self._listeners:
                try:
                    listener(view)
                except Exception:
                    log.exception("a schedule listener failed on %s", row.key)
        return row

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load every schedule and plan each at once: what came due while the engine was down is settled first."""
        for row in await self.db.run(self.db.store.list_schedules):
            self._wake_at[row.key] = 0
        self._task = asyncio.create_task(self._wakeup.run(self._fire_due), name="schedules")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- the door for the API and the operator -----------------------------------------------------
    async def create(self, key: str, spec: ScheduleSpec) -> ScheduleView:
        """A new schedule; `store.ScheduleExists` when the key is taken. It fires from now on, never back in time."""
        self._check_key(key)
        now = self.clock.now_ms()
        state = ScheduleState(cursor_ms=now)
        async with self._lock(key):
            row = await self.db.run(
                self.db.store.create_schedule,
                key,
                spec=spec.to_document(),
                state=state.to_data(),
                next_fire_at_ms=self._next_fire_at(key, spec, state),
                now_ms=now,
            )
            self._written(row)
            self._plan_soon(key)
        return self._view(row)

    async def put(self, key: str, spec: ScheduleSpec) -> ScheduleView:
        """Create, or replace the spec; an unchanged spec changes nothing (a reconciler may put it on every resume).

        A changed spec fires from now on: due times of the new timing before now are not caught up.
        """
        self._check_key(key)
        async with self._lock(key):
            row = await self._get_row(key)
            if row is None:
                now = self.clock.now_ms()
                state = ScheduleState(cursor_ms=now)
                row = await self.db.run(
                    self.db.store.create_schedule,
                    key,
                    spec=spec.to_document(),
                    state=state.to_data(),
                    next_fire_at_ms=self._next_fire_at(key, spec, state),
                    now_ms=now,
                )
                self._written(row)
            elif parse_spec(row.spec) != spec:
                row = await self._rewrite(key, lambda _spec, state, now: (spec, state.settled_until(now)))
            self._plan_soon(key)
        return self._view(row)

    async def update(self, key: str, spec: ScheduleSpec) -> ScheduleView:
        """Replace an existing schedule's spec (ScheduleNotFound if there is none), as `put` does."""
        if await self._get_row(key) is None:
            raise ScheduleNotFound(f"schedule {key!r} not found")
        return await self.put(key, spec)

    async def get(self, key: str) -> ScheduleView | None:
        row = await self._get_row(key)
        return None if row is None else self._view(row)

    async def list(self, *, namespace: str | None = None) -> list[ScheduleView]:
        rows = await self.db.run(self.db.store.list_schedules, namespace=namespace)
        return [self._view(row) for row in rows]

    async def pause(self, key: str, *, note: str = "") -> ScheduleView:
        """Nothing fires until `resume`; the note says why (cut to its limit, never refused)."""
        note = cut_middle(note, limit=MAX_NOTE, what="note")

        def paused(spec: ScheduleSpec, state: ScheduleState, now: int) -> tuple[ScheduleSpec, ScheduleState]:
            return spec.model_copy(update={"paused": True, "note": note}), state

        async with self._lock(key):
            row = await self._rewrite(key, paused)
            self._plan_soon(key)
        return self._view(row)

    async def resume(self, key: str) -> ScheduleView:
        """Fire again from now on: the due times that passed while paused are not caught up."""

        def resumed(spec: ScheduleSpec, state: ScheduleState, now: int) -> tuple[ScheduleSpec, ScheduleState]:
            return spec.model_copy(update={"paused": False, "note": ""}), state.settled_until(now)

        async with self._lock(key):
            row = await self._rewrite(key, resumed)
            self._plan_soon(key)
        return self._view(row)

    async def trigger(self, key: str) -> tuple[ScheduleView, str]:
        """Start the workflow now, paused or not (see `engine.schedules.trigger`); the view and the execution id."""
        async with self._lock(key):
            row = await self._get_row(key)
            if row is None:
                raise ScheduleNotFound(f"schedule {key!r} not found")
            spec, state = parse_spec(row.spec), ScheduleState.from_data(row.state)
            now = self.clock.now_ms()
            planned = trigger(spec, state, key=key, now_ms=now, running=await self._running(state.running_id))
            state = await self._carry_out(spec, planned)
            row = await self._store_state(row, spec, state, now)
            started = planned.actions[-1]
            assert isinstance(started, Start)
        return self._view(row), started.execution_id

    async def delete(self, key: str) -> bool:
        """Whether there was such a schedule; executions it started go on."""
        async with self._lock(key):
            deleted = await self.db.run(self.db.store.delete_schedule, key)
            self._wake_at.pop(key, None)
            for execution_id in [e for e, k in self._waits_for.items() if k == key]:
                del self._waits_for[execution_id]
        return deleted

    # -- firing ----------------------------------------------------------------------------------
    async def _fire_due(self) -> float | None:
        """Plan every schedule whose wake-up time has come; seconds until the next one (None: none)."""
        now = self.clock.now_ms()
        for key in [k for k, at in self._wake_at.items() if at is not None and at <= now]:
            try:
                await self._advance(key)
            except Exception:
                log.exception("schedule %s could not fire; trying again in %d ms", key, _RETRY_MS)
                if key in self._wake_at:
                    self._wake_at[key] = self.clock.now_ms() + _RETRY_MS
        upcoming = [at for at in self._wake_at.values() if at is not None]
        if not upcoming:
            return None
        return max(0.0, (min(upcoming) - self.clock.now_ms()) / 1000)

    async def _advance(self, key: str) -> None:
        async with self._lock(key):
            row = await self._get_row(key)
            if row is None:
                self._wake_at.pop(key, None)
                return
            spec, state = parse_spec(row.spec), ScheduleState.from_data(row.state)
            now = self.clock.now_ms()
            planned = plan(spec, state, key=key, now_ms=now, running=await self._running(state.running_id))
            if planned.actions or planned.state != state:
                state = await self._carry_out(spec, planned)
                await self._store_state(row, spec, state, now)
            self._wake_at[key] = planned.wake_at_ms
            if state.buffered_due_ms is not None and state.running_id is not None:
                self._waits_for[state.running_id] = key

    async def _carry_out(self, spec: ScheduleSpec, planned: Plan) -> ScheduleState:
        """Cancel and start what the plan says, in order; a refused start is recorded, anything else raises.

        An exception leaves the stored state as it was: the next attempt plans the same due times
        and starts the same ids again, which the engine answers with the executions already started.
        """
        state = planned.state
        for action in planned.actions:
            if isinstance(action, Cancel):
                try:
                    await self.engine.handle(action.execution_id, cmd.Cancel(action.reason))
                except (ExecutionNotFound, CommandRejected) as error:  # it ended meanwhile
                    log.info("schedule could not cancel %s: %s", action.execution_id, error)
                continue
            try:
                await self.engine.start(spec.workflow, spec.input, execution_id=action.execution_id)
            except (WorkflowNotFound, ExecutionConflict, ValueError) as error:
                log.warning("schedule start of %s refused: %s", action.execution_id, error)
                state = start_failed(state, action.execution_id, str(error))
        return state

    async def _store_state(self, row: ScheduleRow, spec: ScheduleSpec, state: ScheduleState, now: int) -> ScheduleRow:
        stored = await self.db.run(
            self.db.store.update_schedule,
            row.key,
            expected_revision=row.revision,
            state=state.to_data(),
            next_fire_at_ms=self._next_fire_at(row.key, spec, state),
            now_ms=now,
        )
        if stored is None:  # only this service writes, under the key's lock: someone else is on the store
            raise StoreError(f"schedule {row.key!r} changed under this engine (revision {row.revision})")
        return self._written(stored)

    async def _running(self, execution_id: str | None) -> bool:
        if execution_id is None:
            return False
        row = await self.engine.get_execution(execution_id)
        return row is not None and not ExecutionPhase(row.phase).terminal

    def _on_change(self, execution_id: str, state: ExecutionState) -> None:
        """A buffered fire waits for this execution: plan its schedule as soon as the execution ends."""
        if state.phase.terminal and (key := self._waits_for.pop(execution_id, None)) is not None:
            self._plan_soon(key)

    # -- helpers ---------------------------------------------------------------------------------
    def _plan_soon(self, key: str) -> None:
        self._wake_at[key] = 0
        self._wakeup.poke()

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _get_row(self, key: str) -> ScheduleRow | None:
        return await self.db.run(self.db.store.get_schedule, key)

    async def _rewrite(self, key: str, change: Change) -> ScheduleRow:
        """Apply ``change(spec, state, now) -> (spec, state)`` at the revision read; read again if it moved."""
        for _ in range(_WRITE_ATTEMPTS):
            row = await self._get_row(key)
            if row is None:
                raise ScheduleNotFound(f"schedule {key!r} not found")
            now = self.clock.now_ms()
            spec, state = change(parse_spec(row.spec), ScheduleState.from_data(row.state), now)
            written = await self.db.run(
                self.db.store.update_schedule,
                key,
                expected_revision=row.revision,
                spec=spec.to_document(),
                state=state.to_data(),
                next_fire_at_ms=self._next_fire_at(key, spec, state),
                now_ms=now,
            )
            if written is not None:
                return self._written(written)
        raise StoreError(f"schedule {key!r} kept changing; try again")

    @staticmethod
    def _check_key(key: str) -> None:
        try:
            check_schedule_key(key)
        except ValueError as error:
            raise ScheduleInvalid(str(error)) from None

    @staticmethod
    def _next_fire_at(key: str, spec: ScheduleSpec, state: ScheduleState) -> int | None:
        upcoming = None if spec.paused else next_fire(spec, state, key=key)
        return None if upcoming is None else upcoming[1]

    def _view(self, row: ScheduleRow) -> ScheduleView:
        spec, state = parse_spec(row.spec), ScheduleState.from_data(row.state)
        upcoming = None if spec.paused else next_fire(spec, state, key=row.key)
        return ScheduleView(
            key=row.key,
            spec=spec,
            state=state,
            next_due_ms=None if upcoming is None else upcoming[0],
            next_fire_at_ms=None if upcoming is None else upcoming[1],
            revision=row.revision,
            created_at_ms=row.created_at_ms,
            updated_at_ms=row.updated_at_ms,
        )
