"""Writes Execution status: coalesced per execution, rate-limited across all of them.

The engine commits many events per second; the API server must see a handful of writes per
execution, never one per event. A change only marks the execution dirty; a single loop patches
each dirty execution at most once per `min_interval_s`, sends only the fields that changed, and
spends API writes from one token bucket (`rate_limit.TokenBucket`) shared with the Events and
finalizer patches. Its waits run on the injected clock, so its tests move a fake one.

Not every change is worth the same. An execution's end is written at once (the interval does not
hold it back: whoever waits for it should not wait longer, and it is the write that lets its object
be labelled finished). A new object's first write waits one interval, so an execution that ends
within it gets one status write, its last. A change of phase is written within `min_interval_s`;
progress within a phase (the current step, counters, heartbeats) at most every
`progress_interval_s`, which grows with the number of objects followed so that progress writes
spend at most `progress_writes_per_second` between them (by default a quarter of the budget):
with a few executions their status moves every interval, with hundreds the budget goes to
phases and ends, not to counters nobody can read that fast.

The last few events `recentEvents` lists come from memory: the writer hears each committed
decision's events (`EngineService.add_history_listener`) and keeps, per object it follows, the last
`ProjectionLimits.recent_events` of them as they are listed (seq, time, kind, step: never a payload).
A write reads the history's tail from the store only when that memory does not reach the state's
last event (the object was resumed after a restart, or a decision's events were missed): then the
tail read seeds the memory, and the following writes read nothing. An Execution about to be
started is `expect`ed, so even its first events are heard (the start commits before `track`).

An object is tracked by the engine id it views (its uid, or a child's annotation), which is a
continue-as-new chain's first run: when the run it projects ends `ContinuedAsNew`, the writer
moves on to the chain's latest run and keeps writing into the same object.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightkube.core.exceptions import ApiError

from ..engine import ExecutionState
from ..engine.events import RecordedEvent
from ..engine.state import ExecutionPhase
from ..runtime import Clock, EngineService, ExecutionNotFound, Wakeup
from .client import KubeApi, ObjectRef, is_not_found
from .echoes import OwnEchoes
from .expiry import EXPIRING_PHASES
from .projection import ProjectionLimits, project_execution, recent_event
from .rate_limit import TokenBucket

__all__ = ["FINALIZER", "TERMINAL_PHASES", "FinishListener", "StatusWriter"]

log = logging.getLogger(__name__)

JSON = Any
# kopf's own finalizer, renamed: kopf keeps it on an Execution only while work is in flight.
FINALIZER = "cerebelum.io/cancel-on-delete"

# Events only for what someone may have to act on: a wait for a person or a system, an end other
# than success. A success (and a start) shows in the status alone: an Event each cost two API writes
# per Execution, as many as all its status writes (docs/architecture.md, "API writes per Execution").
_PHASE_EVENTS = {
    "WaitingForApproval": ("Normal", "WaitingForApproval", "step {step} waits for an Approval"),
    "WaitingForSignal": ("Normal", "WaitingForSignal", "step {step} waits for a Signal"),
    "Failed": ("Warning", "Failed", "execution failed: {error}"),
    "Cancelled": ("Normal", "Cancelled", "execution cancelled"),
}
TERMINAL_PHASES = frozenset(phase.value for phase in ExecutionPhase if phase.terminal)
# A write that shows one of these must reach kopf's handlers (the finished label, the finalizer's removal).
_SEEN_BY_KOPF = TERMINAL_PHASES | EXPIRING_PHASES
# Told of each object whose status the writer found finished: (the object, that status), or
# (the object, None) when its history is gone from the store (the retention period removed it).
FinishListener = Callable[[ObjectRef, dict[str, JSON] | None], None]


def _without_nulls(value: JSON) -> JSON:
    """The API server drops null fields inside objects; compare as it stores, or every resume rewrites."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


@dataclass
class _Tracked:
    ref: ObjectRef
    generation: int | None
    run_id: str  # the run projected now: the chain's latest known
    parent_name: str | None = None
    written: dict[str, JSON] = field(default_factory=dict)
    next_write_at: float = 0.0  # no write before: min_interval_s after the last
    progress_at: float = 0.0  # no write of progress alone before: progress_interval_s after the last
    phase: ExecutionPhase | None = None  # the phase shown (`display_phase`) when last projected
    # The last events of `run_id` as `recentEvents` lists them, consecutive by seq (`_heard`).
    recent: deque[dict[str, JSON]] = field(default_factory=deque)


def _heard(recent: deque[dict[str, JSON]], events: Sequence[RecordedEvent]) -> None:
    """Add a decision's events to `recent`; a gap (events missed) empties it first, so what it holds
    is always the consecutive tail of the history up to the last event heard."""
    if not events:
        return
    if recent and recent[-1]["seq"] + 1 != events[0].seq:
        recent.clear()
    keep = recent.maxlen if recent.maxlen is not None else len(events)
    recent.extend(recent_event(recorded) for recorded in events[-keep:])


def _ends(state: ExecutionState) -> bool:
    """The run ended, and with it the chain (a run continued as new has a successor)."""
    return state.phase.terminal and state.phase != ExecutionPhase.CONTINUED_AS_NEW


class StatusWriter:
    def __init__(
        self,
        engine: EngineService,
        api: KubeApi,
        *,
        clock: Clock,
        min_interval_s: float = 1.0,
        writes_per_second: float = 100.0,
        burst: int = 200,
        concurrency: int = 8,
        limits: ProjectionLimits | None = None,
        bucket: TokenBucket | None = None,
        progress_writes_per_second: float | None = None,
        echoes: OwnEchoes | None = None,
    ) -> None:
        """`bucket`: the API write budget shared with the other writers; one of `writes_per_second`/`burst` if None;
        `progress_writes_per_second`: what writes of progress alone may spend (None: a quarter of the bucket's rate);
        `echoes`: told the resourceVersion each write that does not end the execution left the object at,
        so the watch's echo of it is dropped before kopf processes it (`kube/echoes.py`)."""
        self._echoes = echoes
        self.engine = engine
        self.api = api
        self.bucket = bucket if bucket is not None else TokenBucket(rate=writes_per_second, burst=burst, clock=clock)
        self._clock = clock
        self._min_interval_s = min_interval_s
        self._progress_rate = progress_writes_per_second or self.bucket.rate / 4
        self._urgent: set[str] = set()  # ended: written without waiting for the interval
        self._phase_changed: set[str] = set()  # written after min_interval_s, not progress_interval_s
        self._limits = limits or ProjectionLimits()
        self._tracked: dict[str, _Tracked] = {}
        self._chains: dict[str, str] = {}  # a later run's id -> the tracked first run's
        self._dirty: set[str] = set()
        self._in_flight: set[str] = set()
        self._unwritten: set[str] = set()  # tracked, and not yet projected once
        self._wakeup = Wakeup(clock=clock)
        self._slots = asyncio.Semaphore(concurrency)
        self._loop_task: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._finish_listeners: list[FinishListener] = []
        self._expected: dict[str, deque[dict[str, JSON]]] = {}  # about to start: their first events
        # Writes whose recent events came from memory, and those that read the history's tail from the store.
        self.recent_from_memory = 0
        self.recent_from_store = 0
        engine.add_change_listener(self.on_change)
        engine.add_progress_listener(self.on_progress)
        engine.add_history_listener(self.on_events)

    # -- tracking ------------------------------------------------------------------------

    def track(
        self,
        execution_id: str,
        ref: ObjectRef,
        *,
        status: dict[str, JSON] | None,
        generation: int | None,
        parent_name: str | None = None,
        just_created: bool = False,
    ) -> None:
        """Project `execution_id` (and the runs that continue it) onto `ref`; `status` is what the
        object shows now; `parent_name`: the owner Execution of a child's object; `just_created`:
        the object is new, so its first write waits one interval (an execution that ends within it
        gets one status write, its last)."""
        if execution_id not in self._tracked:
            tracked = _Tracked(
                ref,
                generation,
                execution_id,
                parent_name=parent_name,
                written=dict(status or {}),
                recent=self._expected.pop(execution_id, self._new_recent()),
            )
            if just_created:
                tracked.next_write_at = self._clock.now_s() + self._min_interval_s
            self._tracked[execution_id] = tracked
            self._unwritten.add(execution_id)
        self.mark(execution_id)

    def expect(self, execution_id: str) -> None:
        """`execution_id` is about to start and then be tracked: keep the events its start commits
        (they are published before `track` can be called). `unexpect` once tracked or refused."""
        self._expected.setdefault(execution_id, self._new_recent())

    def unexpect(self, execution_id: str) -> None:
        self._expected.pop(execution_id, None)

    def _new_recent(self) -> deque[dict[str, JSON]]:
        return deque(maxlen=max(1, self._limits.recent_events))

    @property
    def progress_interval_s(self) -> float:
        """How long progress alone waits after a write: `min_interval_s`, or longer with many objects."""
        return max(self._min_interval_s, len(self._tracked) / self._progress_rate)

    def add_finish_listener(self, listener: FinishListener) -> None:
        """Called once the object's status is finished, also for one resumed already finished, and
        with None for one whose history is gone from the store."""
        self._finish_listeners.append(listener)

    def forget(self, execution_id: str) -> None:
        tracked = self._tracked.pop(execution_id, None)
        if tracked is not None:
            self._chains.pop(tracked.run_id, None)
        self._dirty.discard(execution_id)
        self._unwritten.discard(execution_id)
        self._urgent.discard(execution_id)
        self._phase_changed.discard(execution_id)

    def forget_objects(self, uids: Collection[str]) -> None:
        """Stop projecting onto these objects (their shard went to another replica, which projects them now)."""
        gone = set(uids)
        for execution_id in [eid for eid, tracked in self._tracked.items() if tracked.ref.uid in gone]:
            self.forget(execution_id)

    def unwritten_ids(self) -> set[str]:
        """Objects tracked whose status has not been projected once yet (written, or found current)."""
        return set(self._unwritten)

    def tracked(self, execution_id: str) -> bool:
        return execution_id in self._tracked

    def ref_of(self, execution_id: str) -> ObjectRef | None:
        """The object that shows `execution_id` (a chain's first run), if one is tracked."""
        tracked = self._tracked.get(execution_id)
        return tracked.ref if tracked is not None else None

    @property
    def idle(self) -> bool:
        """Nothing waits to be written and no write is in flight: only a change can cause a write now."""
        return not self._dirty and not self._in_flight and not self._flushes

    def on_change(self, execution_id: str, state: ExecutionState) -> None:
        tracked = self._tracked.get(state.chain_id)  # the run itself, or a later run of a tracked chain
        if tracked is None:
            return
        if _ends(state):
            self._urgent.add(state.chain_id)
        elif state.display_phase() != tracked.phase:
            self._phase_changed.add(state.chain_id)
        self.mark(state.chain_id)

    def on_events(self, execution_id: str, events: Sequence[RecordedEvent]) -> None:
        """A decision of `execution_id` committed `events`: keep the last few of a run we project."""
        tracked = self._tracked.get(self._chains.get(execution_id, execution_id))
        if tracked is not None and tracked.run_id == execution_id:
            _heard(tracked.recent, events)
            return
        expected = self._expected.get(execution_id)
        if expected is not None:
            _heard(expected, events)

    def on_progress(self, execution_id: str) -> None:
        """A running step reported new progress: written like any change, at most every `min_interval_s`."""
        key = self._chains.get(execution_id, execution_id)
        if key in self._tracked:
            self.mark(key)

    def mark(self, execution_id: str) -> None:
        self._dirty.add(execution_id)
        self._wakeup.poke()

    # -- the loop ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._wakeup.run(self._start_due), name="status-writer")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        for task in list(self._flushes):
            task.cancel()
        await asyncio.gather(*self._flushes, return_exceptions=True)

    async def _start_due(self) -> float | None:
        """Start a flush of each dirty execution whose interval has passed; seconds until the next is due."""
        now = self._clock.now_s()
        next_due: float | None = None
        for execution_id in list(self._dirty):
            tracked = self._tracked.get(execution_id)
            if tracked is None:
                self._dirty.discard(execution_id)
                continue
            if execution_id in self._in_flight:
                continue
            if execution_id in self._urgent:
                due = now
            elif execution_id in self._phase_changed or tracked.phase is None:
                due = tracked.next_write_at
            else:
                due = max(tracked.next_write_at, tracked.progress_at)
            if due > now:
                next_due = due if next_due is None else min(next_due, due)
                continue
            self._dirty.discard(execution_id)
            self._urgent.discard(execution_id)
            self._phase_changed.discard(execution_id)
            self._in_flight.add(execution_id)
            task = asyncio.create_task(self._flush(execution_id, tracked))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
        return None if next_due is None else max(0.0, next_due - self._clock.now_s())

    async def _flush(self, execution_id: str, tracked: _Tracked) -> None:
        try:
            async with self._slots:
                await self._write(execution_id, tracked)
        except ApiError as error:
            if is_not_found(error):
                log.info("%r is gone; no more status for %s", tracked.ref, execution_id)
                self.forget(execution_id)
                return
            log.warning("status of %r not written (%s); retrying", tracked.ref, error)
            tracked.next_write_at = self._clock.now_s() + self._min_interval_s
            self._dirty.add(execution_id)
        except ExecutionNotFound:
            self.forget(execution_id)
            for listener in self._finish_listeners:
                listener(tracked.ref, None)
        except Exception:
            log.exception("status of %r not written; retrying", tracked.ref)
            tracked.next_write_at = self._clock.now_s() + max(self._min_interval_s, 1.0)
            self._dirty.add(execution_id)
        finally:
            self._in_flight.discard(execution_id)
            self._unwritten.discard(execution_id)  # tried once: a failing object must not hold readiness
            self._wakeup.poke()

    async def _write(self, execution_id: str, tracked: _Tracked) -> None:
        # Take the write token first: while we wait, more events coalesce into this one write.
        await self.bucket.take()
        state = await self.engine.state_of(tracked.run_id)
        if state.phase == ExecutionPhase.CONTINUED_AS_NEW:
            latest = await self.engine.latest_run(execution_id)
            if latest != tracked.run_id:
                self._chains.pop(tracked.run_id, None)
                tracked.run_id = latest
                tracked.recent.clear()  # another run's history
                self._chains[latest] = execution_id
                state = await self.engine.state_of(latest)
            if state.phase == ExecutionPhase.CONTINUED_AS_NEW:
                # The relay has not started the next run yet: look again soon, and never show a
                # run that ended this way as the object's phase (it is not how the chain stands).
                tracked.next_write_at = self._clock.now_s() + self._min_interval_s
                self._dirty.add(execution_id)
                return
        recent = await self._recent_events(tracked, state)
        status = project_execution(
            state,
            recent=recent,
            previous_conditions=list(tracked.written.get("conditions") or []),
            generation=tracked.generation,
            now_ms=self._clock.now_ms(),
            limits=self._limits,
            live=self.engine.live_steps(state),
            object_name=tracked.ref.name,
            parent_name=tracked.parent_name,
        )
        changed = {
            key: value
            for key, value in status.items()
            if _without_nulls(tracked.written.get(key)) != _without_nulls(value)
        }
        if changed:
            version = await self.api.patch_status(tracked.ref, changed)
            if version is not None and self._echoes is not None and status["phase"] not in _SEEN_BY_KOPF:
                self._echoes.wrote(tracked.ref.uid, version)
            now = self._clock.now_s()
            tracked.next_write_at = now + self._min_interval_s
            tracked.progress_at = now + self.progress_interval_s
        tracked.phase = state.display_phase()
        previous_phase = tracked.written.get("phase")
        tracked.written = status
        phase = status["phase"]
        if phase != previous_phase and phase in _PHASE_EVENTS:
            type_, reason, template = _PHASE_EVENTS[phase]
            note = template.format(step=status.get("currentStep"), error=status.get("error"))
            await self.bucket.take()
            await self.api.post_event(tracked.ref, type_=type_, reason=reason, note=note, action="Project")
        if phase in TERMINAL_PHASES:
            self.forget(execution_id)
            for listener in self._finish_listeners:
                listener(tracked.ref, status)

    async def _recent_events(self, tracked: _Tracked, state: ExecutionState) -> list[dict[str, JSON]]:
        """The history's last few events up to `state`'s: from memory when it holds them all, else
        read from the store (and kept, so the next write need not read them)."""
        memory = tracked.recent
        wanted = min(self._limits.recent_events, state.last_seq)
        if memory and memory[-1]["seq"] == state.last_seq and len(memory) >= wanted:
            self.recent_from_memory += 1
            return list(memory)
        self.recent_from_store += 1
        after_seq = max(0, state.last_seq - self._limits.recent_events)
        loaded = await self.engine.load_history(tracked.run_id, after_seq=after_seq)
        if tracked.run_id == state.execution_id:
            memory.clear()
            _heard(memory, loaded)
        return [recent_event(recorded) for recorded in loaded]
