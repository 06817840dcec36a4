"""Durable timers: rows in the store; only the ones due soon are held in memory.

A sleeping execution costs one row, not a coroutine, so a million of them wait for free: memory
holds at most `batch` timers (the soonest, read from the store by due time) plus the ones that
came in since within that window (capped too), whatever the number of sleepers.

Waking many at one instant: due timers fire in batches of `wake_batch` executions, each batch
one read of the executions it wakes (`EngineService.handle_each`) and decisions that share group
commits, with at most `batches_in_flight` batches at a time and one batch taken per turn of the
event loop. So a million timers due together never hold the loop or the store's thread for long:
a start, a poll or a completion in between waits for at most a batch or two, not for the wake.

Backpressure: each woken execution schedules its next task, and the workers drain those slower
than timers fire, so without a brake a million due together would queue a million tasks in the
dispatcher's memory. The wake takes no new batch while a task queue it fed lately holds more than
`max_backlog` tasks queued and not leased, and takes again once that queue is down to
``max_backlog - wake_batch * batches_in_flight`` (`WakePace`, pure, decides; the dispatcher's
`backlog` counts). A due timer held back stays in the heap and in the store: deferred, never lost.
A queue that nobody drains (paused, no worker) holds the wake for `stall_ms` at most, from when
it went over the bound or from its last lease, whichever is later: the backlog justifies a delay
only while it goes down.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from ..engine import Decision, Reply
from ..engine import actions as act
from ..engine import commands as cmd
from ..store import ShardNotOwned, StoreUnavailable
from .clock import Clock
from .database import Database
from .engine_service import EngineService, ExecutionNotFound
from .task_lifecycle import QueueBacklog
from .wakeup import Wakeup

__all__ = ["Backlogs", "TimerService", "WakePace"]

log = logging.getLogger(__name__)

# The task queues a wake fed that WakePace remembers: woken executions name a handful (a
# workflow's queues), but a store of many workflows could name any number.
MAX_FED_QUEUES = 1_000


class Backlogs(Protocol):
    """Where the timers read a task queue's backlog: the dispatcher."""

    def backlog(self, task_queue: str) -> QueueBacklog: ...


class WakePace:
    """Whether a wake may take its next batch, from the backlogs of the queues it fed: pure, clock-free.

    A queue counts while the wake fed it (a woken execution scheduled a task in it) within the
    last ``fed_window_ms``: the queues the next batch will feed are not known before it fires,
    and are most likely those the batches before it fed. The wake holds while one of them holds
    more than ``bound`` queued tasks, and until each is down to ``resume`` (hysteresis: one
    batch more does not flip it back), unless that queue is stalled: over the bound for
    ``stall_ms`` with no lease meanwhile.
    """

    def __init__(self, *, bound: int, resume: int, stall_ms: int, fed_window_ms: int) -> None:
        if not 0 <= resume <= bound:
            raise ValueError("resume must be between 0 and the bound")
        self.bound = bound
        self.resume = resume
        self.stall_ms = stall_ms
        self.fed_window_ms = fed_window_ms
        self._fed: dict[str, int] = {}  # task queue -> when the wake last fed it, oldest first
        self._over_since: dict[str, int] = {}  # task queue -> since when it holds the wake
        self.holding: tuple[str, ...] = ()  # the queues that held the wake at the last `decide`

    def fed(self, task_queue: str, now_ms: int) -> None:
        """A woken execution scheduled a task in ``task_queue``."""
        self._fed.pop(task_queue, None)
        self._fed[task_queue] = now_ms
        while len(self._fed) > MAX_FED_QUEUES:
            del self._fed[next(iter(self._fed))]

    def queues(self, now_ms: int) -> list[str]:
        """The queues that count now: fed within the window (older ones are forgotten)."""
        while self._fed and next(iter(self._fed.values())) < now_ms - self.fed_window_ms:
            forgotten = next(iter(self._fed))
            del self._fed[forgotten]
            self._over_since.pop(forgotten, None)
        return list(self._fed)

    def decide(self, backlogs: Mapping[str, QueueBacklog], now_ms: int) -> int | None:
        """None: take the next batch now. Else hold it back: the time (ms) to decide again unprompted,
        when the queue holding it would count as stalled (a drain prompts it sooner: `may_resume`)."""
        holding: list[str] = []
        again: int | None = None
        for queue, backlog in backlogs.items():
            if backlog.queued <= (self.resume if queue in self.holding else self.bound):
                self._over_since.pop(queue, None)
                continue
            since = self._over_since.setdefault(queue, now_ms)
            stalled_at = max(since, backlog.drained_at_ms or since) + self.stall_ms
            if now_ms >= stalled_at:
                continue  # nobody takes from it: holding the wake would only make timers late
            holding.append(queue)
            again = stalled_at if again is None else min(again, stalled_at)
        self.holding = tuple(holding)
        return again

    def may_resume(self, backlogs: Mapping[str, QueueBacklog]) -> bool:
        """Whether the queues that held the wake have drained to the resume mark."""
        return all(backlogs[queue].queued <= self.resume for queue in self.holding if queue in backlogs)


class TimerService:
    """Fires the store's timers when they are due, on the injected clock.

    Invariant: every timer due at or before ``_loaded_until_ms`` is in the heap or being fired,
    so the store is read only when the heap runs low (`_refill`), never per timer.
    """

    def __init__(
        self,
        db: Database,
        engine: EngineService,
        *,
        clock: Clock,
        horizon_ms: int = 60_000,
        batch: int = 5_000,
        wake_batch: int = 256,
        batches_in_flight: int = 2,
        tasks: Backlogs | None = None,
        max_backlog: int | None = None,
        stall_ms: int = 10_000,
    ) -> None:
        """``tasks``: the dispatcher, whose backlogs hold a wake back (None: no backpressure).
        ``max_backlog``: the queued tasks a fed queue may hold before the wake waits; by default
        four rounds of the batches in flight (2,048), see docs/architecture.md#timers."""
        if batch < 2 * wake_batch * batches_in_flight:
            raise ValueError("batch must be at least twice the timers in flight (wake_batch * batches_in_flight)")
        in_flight = wake_batch * batches_in_flight
        bound = 4 * in_flight if max_backlog is None else max_backlog
        self.db = db
        self.engine = engine
        self.clock = clock
        self.horizon_ms = horizon_ms
        self.batch = batch
        self.wake_batch = wake_batch
        self._gate = asyncio.Semaphore(batches_in_flight)
        self._batches: set[asyncio.Task[None]] = set()
        self._heap: list[tuple[int, str, str]] = []
        self._known: set[str] = set()  # the timers in the heap, not cancelled
        self._firing: set[str] = set()  # taken from the heap, their decisions not settled yet
        self._waking: dict[str, int] = {}  # execution -> its timers being fired (to learn the queues fed)
        self.tasks = tasks
        self.pace = WakePace(bound=bound, resume=max(0, bound - in_flight), stall_ms=stall_ms, fed_window_ms=horizon_ms)
        self._loaded_until_ms = 0
        self._wakeup = Wakeup(clock=clock)
        self._task: asyncio.Task[None] | None = None
        self.taken = 0  # timers taken out of the heap to fire
        self.fired = 0  # timers whose decision was made (accepted or not), for tests and metrics
        self.batches = 0
        self.held_back = 0  # turns of the loop the backlog held the wake (for tests and metrics)
        engine.add_listener(self.on_actions)

    @property
    def held(self) -> int:
        """Timers held in memory now (waiting in the heap or being fired), whatever the store holds."""
        return len(self._known) + len(self._firing)

    async def start(self) -> None:
        await self._refill()
        self._task = asyncio.create_task(self._wakeup.run(self._fire_due), name="timers")

    async def rescan(self) -> None:
        """Read the due timers again: the store's reads of work now cover shards just taken."""
        await self._refill()
        self._wakeup.poke()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for firing in list(self._batches):
            firing.cancel()
        await asyncio.gather(*self._batches, return_exceptions=True)

    def on_actions(self, execution_id: str, workflow: str, actions: list[act.Action]) -> None:
        woken = execution_id in self._waking
        for action in actions:
            if woken and isinstance(action, act.ScheduleTask):
                self.pace.fed(action.task_queue, self.clock.now_ms())
            elif isinstance(action, act.StartTimer) and action.fire_at_ms <= self._loaded_until_ms:
                if len(self._known) >= 2 * self.batch:
                    # Full: leave it in the store, and pull the window in front of it so a refill reads it.
                    self._loaded_until_ms = min(self._loaded_until_ms, action.fire_at_ms - 1)
                else:
                    self._push(action.fire_at_ms, action.timer_id, execution_id)
            elif isinstance(action, act.CancelTimer):
                self._known.discard(action.timer_id)
                if len(self._heap) > 2 * len(self._known) + self.batch:  # mostly cancelled: drop them
                    self._heap = [entry for entry in self._heap if entry[1] in self._known]
                    heapq.heapify(self._heap)
        # Every decision (leases above all) may have drained a queue that holds the wake: the loop
        # sleeps without a deadline for it, so it is prompted here (the dispatcher, a listener
        # before this one, has already applied the decision's leases).
        if self.pace.holding and self.pace.may_resume(self._backlogs(self.pace.holding)):
            self._wakeup.poke()

    def _backlogs(self, queues: Sequence[str]) -> dict[str, QueueBacklog]:
        tasks = self.tasks
        return {} if tasks is None else {queue: tasks.backlog(queue) for queue in queues}

    def _push(self, fire_at_ms: int, timer_id: str, execution_id: str) -> None:
        if timer_id in self._known or timer_id in self._firing:
            return
        self._known.add(timer_id)
        heapq.heappush(self._heap, (fire_at_ms, timer_id, execution_id))
        self._wakeup.poke()

    async def _refill(self) -> None:
        until = self.clock.now_ms() + self.horizon_ms
        rows = await self.db.run(self.db.store.due_timers, until_ms=until, limit=self.batch)
        for row in rows:
            self._push(row.fire_at_ms, row.timer_id, row.execution_id)
        # With a full batch, later timers may be missing, even some due in the same millisecond as
        # the last one read: only trust the window up to just before it.
        self._loaded_until_ms = rows[-1].fire_at_ms - 1 if len(rows) >= self.batch else until

    def _take_due(self, now: int) -> list[tuple[str, str]]:
        """Up to `wake_batch` due timers out of the heap, soonest first: (timer id, execution id)."""
        due: list[tuple[str, str]] = []
        while self._heap and self._heap[0][0] <= now and len(due) < self.wake_batch:
            _, timer_id, execution_id = heapq.heappop(self._heap)
            if timer_id not in self._known:
                continue  # cancelled meanwhile
            self._known.discard(timer_id)
            self._firing.add(timer_id)
            self._waking[execution_id] = self._waking.get(execution_id, 0) + 1
            due.append((timer_id, execution_id))
        self.taken += len(due)
        return due

    async def _fire_due(self) -> float:
        """Start one batch of what is due, refill when the heap runs low; seconds until more is due.

        One batch per call: the wake-up loop yields to the event loop between calls. While the
        backlog holds the wake (`WakePace`), what is due stays in the heap and the loop sleeps
        until a drain pokes it (`on_actions`) or the holding queue would count as stalled.
        """
        now = self.clock.now_ms()
        if self._heap and self._heap[0][0] <= now:
            await self._gate.acquire()  # bounds the batches in flight: the wake runs at the store's pace
            # Asked with the gate held: at most the batches in flight add to a backlog found in bounds.
            now = self.clock.now_ms()
            again = None if self.tasks is None else self.pace.decide(self._backlogs(self.pace.queues(now)), now)
            if again is not None:  # nothing taken, so nothing to refill for
                self._gate.release()
                self.held_back += 1
                return max(0.001, min((again - now) / 1000, self.horizon_ms / 2000))
            due = self._take_due(now)
            if due:
                firing = asyncio.create_task(self._fire_batch(due), name="timers-batch")
                self._batches.add(firing)
                firing.add_done_callback(self._batches.discard)
            else:
                self._gate.release()
        # Every timer not in the heap falls due after all in it: while some in it are due, or many
        # are left, the store has nothing sooner to give.
        drained = not self._heap or self._heap[0][0] > now or len(self._heap) < self.batch // 4
        if drained and now >= self._loaded_until_ms - self.horizon_ms // 2:
            await self._refill()
        if self._heap and self._heap[0][0] <= self.clock.now_ms():
            return 0.0
        next_due = self._heap[0][0] if self._heap else self._loaded_until_ms
        return max(0.001, min((next_due - self.clock.now_ms()) / 1000, self.horizon_ms / 2000))

    def _retry(self, timer_id: str, execution_id: str) -> None:
        self._firing.discard(timer_id)
        self._push(self.clock.now_ms() + 1000, timer_id, execution_id)

    async def _fire_batch(self, due: Sequence[tuple[str, str]]) -> None:
        try:
            outcomes = await self.engine.handle_each(
                [(execution_id, cmd.TimerFired(timer_id)) for timer_id, execution_id in due]
            )
            self.batches += 1
            for (timer_id, execution_id), outcome in zip(due, outcomes, strict=True):
                await self._settle(timer_id, execution_id, outcome)
        finally:
            self._firing.difference_update(timer_id for timer_id, _ in due)
            for _, execution_id in due:
                left = self._waking.pop(execution_id) - 1
                if left:
                    self._waking[execution_id] = left
            self._gate.release()

    async def _settle(self, timer_id: str, execution_id: str, outcome: Decision | BaseException) -> None:
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome
        if isinstance(outcome, ShardNotOwned):
            return  # its shard changed hands: the timer is still in the store, for the next owner to fire
        if isinstance(outcome, BaseException) and not isinstance(outcome, ExecutionNotFound):
            if isinstance(outcome, StoreUnavailable):
                log.warning("timer %s of %s not fired: %s; retrying soon", timer_id, execution_id, outcome)
            else:
                log.error("timer %s of %s failed; retrying soon", timer_id, execution_id, exc_info=outcome)
            self._retry(timer_id, execution_id)
            return
        if isinstance(outcome, ExecutionNotFound) or outcome.reply != Reply.ACCEPTED:
            try:
                await self.db.run(self.db.store.delete_timer, timer_id)
            except StoreUnavailable as error:  # fired again later, refused again, deleted then
                log.warning("timer %s of %s not deleted: %s; retrying soon", timer_id, execution_id, error)
                self._retry(timer_id, execution_id)
                return
        self.fired += 1
