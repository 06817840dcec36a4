"""Schedules' pure core: given a schedule's stored state and "now", what to start, cancel or skip.

No I/O and no clock: the runtime (`runtime/schedules.py`) loads the state, asks `plan`, carries
out its actions through the engine and stores the state it returns. Exactly once per due time
rests on two facts, not on that store write:

* every due time is settled in order, and the state's ``cursor_ms`` says up to where; a plan
  never goes back before the cursor, so a stored state never fires a due time twice;
* the execution a due time starts has an id derived from the schedule and the due time
  (`execution_id`), and starting an existing id is a no-op in the engine. If the process dies
  after starting and before storing the state, the next plan starts the same id again, and
  nothing happens.

Work per call is bounded (`MAX_FIRES_PER_PLAN`, `MAX_STEPS_PER_PLAN`): after a long outage a
plan settles a bounded batch and asks to be called again at once, so missed fires are never
all started together, and the due times missed by more than the catch-up window are dropped
and counted (for intervals in one step, however long the outage).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from .schedule_spec import Overlap, ScheduleSpec, check_schedule_key, jitter_ms, next_due_ms

__all__ = [
    "MAX_FIRES_PER_PLAN",
    "MAX_RECENT",
    "MAX_STEPS_PER_PLAN",
    "Cancel",
    "Fire",
    "Outcome",
    "Plan",
    "ScheduleState",
    "Start",
    "execution_id",
    "next_fire",
    "plan",
    "start_failed",
    "trigger",
    "trigger_execution_id",
]

MAX_FIRES_PER_PLAN: Final = 100  # executions started, skipped or buffered by one call
MAX_STEPS_PER_PLAN: Final = 1_000  # due times looked at by one call, missed ones included
MAX_RECENT: Final = 20  # fires kept in the state for `describe`
# An execution id is at most 128 characters: the schedule's part is cut to leave room for the time.
_MAX_ID_BASE: Final = 96
_HASHED_PREFIX: Final = 71  # then ":" and 24 hexadecimal digits of the key's hash: 96 in all


class Outcome(StrEnum):
    STARTED = "started"
    TRIGGERED = "triggered"  # started by hand (`trigger`), not by a due time
    SKIPPED = "skipped"  # the overlap policy said no
    BUFFERED = "buffered"  # bufferOne: waits for the running execution to end
    MISSED = "missed"  # later than the catch-up window (the engine was down): dropped
    FAILED = "failed"  # the start was refused (the workflow is gone, the id is taken by another)


@dataclass(frozen=True, slots=True)
class Fire:
    """One settled due time (or ``count`` consecutive missed ones, the last of which is ``due_ms``)."""

    due_ms: int
    at_ms: int
    outcome: Outcome
    execution_id: str | None = None
    reason: str = ""
    count: int = 1

    def to_data(self) -> dict[str, Any]:
        return {
            "dueMs": self.due_ms,
            "atMs": self.at_ms,
            "outcome": self.outcome.value,
            "executionId": self.execution_id,
            "reason": self.reason,
            "count": self.count,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Fire:
        return cls(
            due_ms=int(data["dueMs"]),
            at_ms=int(data["atMs"]),
            outcome=Outcome(data["outcome"]),
            execution_id=data.get("executionId"),
            reason=str(data.get("reason", "")),
            count=int(data.get("count", 1)),
        )


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What a schedule remembers between plans; stored beside its spec."""

    cursor_ms: int  # every due time at or before this is settled
    buffered_due_ms: int | None = None  # bufferOne: the due time waiting for the running execution
    running_id: str | None = None  # the execution started last: the one overlap asks about
    last_due_ms: int | None = None  # the due time of the last execution started
    last_fire_ms: int | None = None  # when that execution was started
    started: int = 0
    skipped: int = 0
    missed: int = 0
    failed: int = 0
    recent: tuple[Fire, ...] = field(default=())

    def to_data(self) -> dict[str, Any]:
        return {
            "cursorMs": self.cursor_ms,
            "bufferedDueMs": self.buffered_due_ms,
            "runningId": self.running_id,
            "lastDueMs": self.last_due_ms,
            "lastFireMs": self.last_fire_ms,
            "started": self.started,
            "skipped": self.skipped,
            "missed": self.missed,
            "failed": self.failed,
            "recent": [fire.to_data() for fire in self.recent],
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ScheduleState:
        return cls(
            cursor_ms=int(data["cursorMs"]),
            buffered_due_ms=data.get("bufferedDueMs"),
            running_id=data.get("runningId"),
            last_due_ms=data.get("lastDueMs"),
            last_fire_ms=data.get("lastFireMs"),
            started=int(data.get("started", 0)),
            skipped=int(data.get("skipped", 0)),
            missed=int(data.get("missed", 0)),
            failed=int(data.get("failed", 0)),
            recent=tuple(Fire.from_data(item) for item in data.get("recent", ())),
        )

    def settled_until(self, now_ms: int) -> ScheduleState:
        """Nothing at or before ``now_ms`` fires: a new, resumed or changed schedule never fires back in time."""
        return replace(self, cursor_ms=max(self.cursor_ms, now_ms))

    def _with(self, fire: Fire, **changes: Any) -> ScheduleState:
        return replace(self, recent=(*self.recent, fire)[-MAX_RECENT:], **changes)


@dataclass(frozen=True, slots=True)
class Start:
    """Start the schedule's workflow with its input under this id (a no-op if it exists)."""

    execution_id: str
    due_ms: int


@dataclass(frozen=True, slots=True)
class Cancel:
    execution_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The state to store after carrying out ``actions`` in order, and when to plan again.

    ``wake_at_ms``: the next fire time, ``now`` itself when the batch was cut short, or None
    when only an outside change can bring work (paused, no further due time, or a buffered fire
    waiting for the running execution to end).
    """

    state: ScheduleState
    actions: tuple[Start | Cancel, ...]
    wake_at_ms: int | None


def _id_base(key: str) -> str:
    check_schedule_key(key)
    base = key.replace("/", ":")  # ':' is in no Kubernetes name: "ns/a" and a name "ns-a" stay apart
    if len(base) <= _MAX_ID_BASE:
        return base
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return f"{base[:_HASHED_PREFIX]}:{digest}"


def execution_id(key: str, due_ms: int) -> str:
    """``<schedule>-<due time, UTC, yyyymmddThhmmssZ>``: the same for every plan of this due time."""
    stamp = datetime.fromtimestamp(due_ms // 1000, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{_id_base(key)}-{stamp}"


def trigger_execution_id(key: str, now_ms: int) -> str:
    """``<schedule>-trigger-<now, UTC, to the millisecond>``: never a due time's id (those have no '.')."""
    moment = datetime.fromtimestamp(now_ms // 1000, tz=UTC).strftime("%Y%m%dT%H%M%S")
    return f"{_id_base(key)}-trigger-{moment}.{now_ms % 1000:03d}Z"


def next_fire(spec: ScheduleSpec, state: ScheduleState, *, key: str) -> tuple[int, int] | None:
    """The next due time after the cursor and the instant it fires (due time plus jitter), or None."""
    due = next_due_ms(spec, state.cursor_ms)
    if due is None:
        return None
    return due, due + jitter_ms(spec, key, due)


def plan(
    spec: ScheduleSpec,
    state: ScheduleState,
    *,
    key: str,
    now_ms: int,
    running: bool,
    max_fires: int = MAX_FIRES_PER_PLAN,
    max_steps: int = MAX_STEPS_PER_PLAN,
) -> Plan:
    """Settle the due times whose fire time has come, in order, at most a bounded batch of them.

    ``running``: whether ``state.running_id`` names an execution that has not ended (the caller
    looked). A paused schedule settles nothing.
    """
    if spec.paused:
        return Plan(state, (), None)
    actions: list[Start | Cancel] = []
    if state.buffered_due_ms is not None and not running:
        due = state.buffered_due_ms
        state, running = _started(state, key, due, now_ms, actions, reason="buffered until the previous one ended")
        state = replace(state, buffered_due_ms=None)
    state = _drop_long_missed(spec, state, key=key, now_ms=now_ms)
    fires = steps = 0
    window = spec.catchup_window_ms
    while fires < max_fires and steps < max_steps:
        upcoming = next_fire(spec, state, key=key)
        if upcoming is None:
            return Plan(state, tuple(actions), None)
        due, fire_at = upcoming
        if fire_at > now_ms:
            return Plan(state, tuple(actions), fire_at)
        steps += 1
        if now_ms - fire_at > window:
            state = _missed(state, due, now_ms, count=1)
            continue
        fires += 1
        state, running = _on_due(spec, state, key, due, now_ms, running, actions)
    return Plan(state, tuple(actions), now_ms)


def trigger(spec: ScheduleSpec, state: ScheduleState, *, key: str, now_ms: int, running: bool) -> Plan:
    """Start the workflow now, by hand, paused or not; cancelRunning cancels the running one first.

    The other policies do not apply: a person asking for a run now means it. Due times are untouched.
    """
    actions: list[Start | Cancel] = []
    if spec.overlap is Overlap.CANCEL_RUNNING and running and state.running_id is not None:
        actions.append(Cancel(state.running_id, "cancelled by a trigger of its schedule (overlap: cancelRunning)"))
    started_id = trigger_execution_id(key, now_ms)
    actions.append(Start(started_id, now_ms))
    state = state._with(
        Fire(now_ms, now_ms, Outcome.TRIGGERED, started_id),
        running_id=started_id,
        last_due_ms=now_ms,
        last_fire_ms=now_ms,
        started=state.started + 1,
    )
    return Plan(state, tuple(actions), None)


def start_failed(state: ScheduleState, started_id: str, reason: str) -> ScheduleState:
    """The engine refused a start the plan asked for: record it as failed, not started."""
    recent = tuple(
        replace(fire, outcome=Outcome.FAILED, reason=reason)
        if fire.execution_id == started_id and fire.outcome in (Outcome.STARTED, Outcome.TRIGGERED)
        else fire
        for fire in state.recent
    )
    return replace(
        state,
        recent=recent,
        started=max(0, state.started - 1),
        failed=state.failed + 1,
        running_id=None if state.running_id == started_id else state.running_id,
    )


# -- one due time ------------------------------------------------------------------------------


def _on_due(
    spec: ScheduleSpec,
    state: ScheduleState,
    key: str,
    due: int,
    now_ms: int,
    running: bool,
    actions: list[Start | Cancel],
) -> tuple[ScheduleState, bool]:
    state = replace(state, cursor_ms=due)
    if not running or spec.overlap is Overlap.ALLOW_ALL:
        return _started(state, key, due, now_ms, actions)
    previous = state.running_id
    if spec.overlap is Overlap.CANCEL_RUNNING:
        assert previous is not None
        actions.append(Cancel(previous, "cancelled by its schedule: the next due time came (overlap: cancelRunning)"))
        return _started(state, key, due, now_ms, actions, reason=f"cancelled {previous}")
    if spec.overlap is Overlap.BUFFER_ONE and state.buffered_due_ms is None:
        fire = Fire(due, now_ms, Outcome.BUFFERED, execution_id(key, due), f"waits for {previous} to end")
        return state._with(fire, buffered_due_ms=due), running
    why = f"{previous} was still running" + ("; one fire already waits" if spec.overlap is Overlap.BUFFER_ONE else "")
    return state._with(Fire(due, now_ms, Outcome.SKIPPED, None, why), skipped=state.skipped + 1), running


def _started(
    state: ScheduleState,
    key: str,
    due: int,
    now_ms: int,
    actions: list[Start | Cancel],
    *,
    reason: str = "",
) -> tuple[ScheduleState, bool]:
    started_id = execution_id(key, due)
    actions.append(Start(started_id, due))
    fire = Fire(due, now_ms, Outcome.STARTED, started_id, reason)
    changed = state._with(fire, running_id=started_id, last_due_ms=due, last_fire_ms=now_ms, started=state.started + 1)
    return changed, True


def _missed(state: ScheduleState, due: int, now_ms: int, *, count: int) -> ScheduleState:
    """Count missed due times, merging with a missed record just before so an outage is one line."""
    state = replace(state, cursor_ms=max(state.cursor_ms, due), missed=state.missed + count)
    last = state.recent[-1] if state.recent else None
    if last is not None and last.outcome is Outcome.MISSED and last.at_ms == now_ms:
        merged = replace(last, due_ms=due, count=last.count + count)
        return replace(state, recent=(*state.recent[:-1], merged))
    reason = "later than the catch-up window (the engine was not running)"
    return state._with(Fire(due, now_ms, Outcome.MISSED, None, reason, count))


def _drop_long_missed(spec: ScheduleSpec, state: ScheduleState, *, key: str, now_ms: int) -> ScheduleState:
    """For an interval, every due time surely past the window in one step, however many.

    A due time is missed when ``now - (due + its jitter) > window``, and its jitter is below
    ``jitter``, so one at or before ``horizon`` is missed whatever its jitter. Cron due times are
    irregular: `plan` settles them one by one, within its bounded batch.
    """
    interval = spec.interval_ms
    horizon = now_ms - spec.catchup_window_ms - max(0, spec.jitter_max_ms - 1) - 1
    if interval is None or horizon <= state.cursor_ms:
        return state
    low = state.cursor_ms if spec.start_at_ms is None else max(state.cursor_ms, spec.start_at_ms - 1)
    high = horizon if spec.end_at_ms is None else min(horizon, spec.end_at_ms)

    def index(instant: int) -> int:
        return (instant - spec.offset_ms) // interval

    count = max(0, index(high) - index(low))
    if count == 0:
        return replace(state, cursor_ms=horizon)
    last_missed = spec.offset_ms + index(high) * interval
    return replace(_missed(state, last_missed, now_ms, count=count), cursor_ms=horizon)
