"""The dispatcher's task lifecycle as a pure core: every state a task passes through, and its rules.

`TaskBook` holds no futures, opens no connections and reads no clock: each call takes ``now_ms``
and returns what to do (``Offer``: hand this to that waiting poller; ``Expiry``: time this lease
out). `Dispatcher` is the thin async glue around it that talks to the engine, the store and the
waiting pollers, as `engine.decide` is pure with `runtime` doing the I/O.

One task, by its token::

    ScheduleTask ─► queued: future (visible_at_ms ahead) ──promote──► ready
    ready ─► sticky: only its previous worker may take it until its window ends, then shared
    ready ─► offered (to a waiting poller, or taken by a poll) ─► the glue asks the engine to lease it
    ready ─► reserved (eager dispatch: a waiting poller set aside while the engine decides)
    offered/reserved ── LeaseTask (the lease committed) ─► leased ─► delivered, or undelivered
    offered/reserved ── lease refused ─► dropped;  store error ─► future again (retry_after_error_ms)
    reserved ── commit failed (release) ─► ready again, the poller waiting again
    leased ── heartbeat ─► leased (expiry moved, progress kept) ── deadline passed ─► Expiry
    queued ── CancelTask/DeleteTask ─► gone;  leased ── CancelTask ─► cancel requested;  DeleteTask ─► gone

Invariants (each checked by tests/unit/runtime/test_task_lifecycle.py):

1. A token is queued or leased, never both; a reserved task is a queued one with a poller set aside.
2. A worker receives a `GrantedTask` only for a token that a `LeaseTask` (a committed lease) made
   leased to that very worker: so a task reaches a worker only after its lease is durable.
3. A waiting poller is offered at most one thing, and leaves the waiting list when it is; a poller
   that stopped listening is never offered anything.
4. A ready task inside its sticky window goes only to its sticky worker; after the window, to the
   oldest-waiting poller that serves its (task queue, step, namespace); a poll takes the oldest
   ready task it may take.
5. A lease whose poller stopped listening before it committed (an eager reservation, or a poll
   cancelled while the glue leased the task it took) goes to another poll or stand-by of that
   worker waiting then, else is kept for that worker's next poll or stand-by (undelivered), and
   handed out only while the worker still holds it; a lease nobody collects expires like any other.
6. A lease expires at its heartbeat deadline (``lease_ms`` after the last heartbeat, never past the
   attempt's deadline) or at the attempt's deadline, whichever comes first.
7. Every poll is recorded per task queue and per (task queue, step), in bounded maps, so a step
   that waits can say whether any worker serves it (`waiting_hint`).
8. Flow control (issue 19): a task is offered, taken or reserved only while its queue is not
   paused and its queue's and its flow key's rate limits have room (`FlowGate`); from then until
   its lease is known it holds a place in those windows. Among the ready tasks a poll may take,
   a higher priority goes first, and within a priority flow keys take turns (`FairQueue`). A task
   that a rate limit counts is never leased eagerly: its lease is decided after it was admitted,
   so the history's start time is never earlier than the admission.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from ..engine import actions as act
from ..engine.rates import RateLimit
from ..store import TaskRow
from .fair_queue import FairQueue
from .queue_gate import Block, FlowGate, QueueControl
from .workflow_key import namespace_of

__all__ = [
    "Expiry",
    "GrantedTask",
    "HeartbeatResult",
    "Lease",
    "Offer",
    "QueueBacklog",
    "QueueStats",
    "QueuedTask",
    "TaskBook",
    "Waiter",
]

JSON = Any
# How many task queues, and (queue, step) pairs, whose last poll is remembered: a worker may
# name any queue, so the maps are bounded; the least recently polled are forgotten first.
MAX_POLL_RECORDS = 10_000
# How stale a step's last-poll time (`waiting_hint`) may be: a poll's steps are stamped at most this often.
POLL_RECORD_GRAIN_MS = 1_000


@dataclass(slots=True)
class QueuedTask:
    token: str
    execution_id: str
    namespace: str
    step: str
    attempt: int
    poll: int
    task_queue: str
    visible_at_ms: int
    sticky_worker_id: str | None
    sticky_until_ms: int
    arguments: JSON
    timeout_ms: int
    lease_ms: int
    heartbeat_required: bool
    priority: int = 0
    flow_key: str | None = None
    key_rate_limit: RateLimit | None = None


def _queued_from(
    source: TaskRow | act.ScheduleTask,
    execution_id: str,
    workflow: str,
    *,
    sticky_worker_id: str | None,
    sticky_until_ms: int,
) -> QueuedTask:
    """A queue entry from a stored task row (at start) or a fresh ScheduleTask action."""
    return QueuedTask(
        token=source.token,
        execution_id=execution_id,
        namespace=namespace_of(workflow),
        step=source.step,
        attempt=source.attempt,
        poll=source.poll,
        task_queue=source.task_queue,
        visible_at_ms=source.visible_at_ms,
        sticky_worker_id=sticky_worker_id,
        sticky_until_ms=sticky_until_ms,
        arguments=source.arguments,
        timeout_ms=source.timeout_ms,
        lease_ms=source.lease_ms,
        heartbeat_required=source.heartbeat_required,
        priority=source.priority,
        flow_key=source.flow_key,
        key_rate_limit=source.key_rate_limit,
    )


@dataclass(slots=True)
class Lease:
    token: str
    execution_id: str
    worker_id: str
    task_queue: str
    namespace: str
    lease_ms: int
    heartbeat_required: bool
    lease_expires_at_ms: int
    attempt_deadline_ms: int
    cancel_requested: bool = False
    progress: JSON = None  # the latest heartbeat's
    last_progress: JSON = None  # the previous attempt's last, handed to this one
    run: int = 1  # the step's run this attempt belongs to


@dataclass(frozen=True, slots=True)
class GrantedTask:
    token: str
    execution_id: str
    workflow: str
    step: str
    attempt: int
    poll: int
    arguments: JSON
    attempt_deadline_ms: int
    lease_ms: int
    heartbeat_required: bool
    last_progress: JSON = None
    run: int = 1


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    cancel_requested: bool
    lease_lost: bool
    lease_expires_at_ms: int


@dataclass(eq=False, slots=True)
class Waiter:
    """A poll waiting for a task; identity is the poll (two polls of one worker are two waiters)."""

    worker_id: str
    task_queue: str
    steps: frozenset[str]
    namespaces: frozenset[str] | None  # None: tasks of every namespace
    listening: bool = True
    # A completion standing by for its worker's next task (CompleteTaskRequest.poll_next): it takes
    # only a task leased in a decision (eager dispatch), never a queued one that needs a lease of its own.
    in_reply: bool = False

    def accepts(self, step: str, namespace: str) -> bool:
        return self.listening and step in self.steps and (self.namespaces is None or namespace in self.namespaces)


class Offer(NamedTuple):
    """Hand ``item`` to ``waiter``: a queued task it must lease, or a task already leased to it."""

    waiter: Waiter
    item: QueuedTask | GrantedTask


class Expiry(NamedTuple):
    """Time out this lease; ``progress`` is its last heartbeat's, kept for the next attempt."""

    token: str
    execution_id: str
    kind: Literal["start_to_close", "heartbeat", "lease"]
    progress: JSON


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What `cerebelum queue list` shows of a task queue besides its setting."""

    ready: int  # visible, waiting for a worker (held back or not)
    scheduled: int  # in backoff or a start delay
    running: int  # leased
    pollers: int  # polls waiting now
    last_poll_ms: int | None
    block: Block | None  # why its tasks wait, if they do (paused, its rate used up)


class QueueBacklog(NamedTuple):
    """What a task queue holds for its workers now, for the timers' backpressure (`runtime.timers`)."""

    queued: int  # tasks queued and not leased (ready, reserved or in backoff): each held in memory
    drained_at_ms: int | None  # when one of its tasks was last leased (None: not since the start)


@dataclass(slots=True)
class _Reservation:
    waiter: Waiter
    workflow: str


Admit = Callable[[QueuedTask], bool]
_Bucket = tuple[str, str, str]  # (task queue, step, namespace)


class _ReadyTasks:
    """Tasks a worker may take now, indexed so a poll never scans the queue.

    By (task queue, step, namespace), each a `FairQueue` (priority, then turns between flow
    keys, then arrival); a task inside its sticky window waits under its worker instead, and
    moves to the shared index when the window ends (`expire`). With 100,000 queued tasks a poll
    costs one lookup per step and namespace the worker serves, and O(log n) to take.
    """

    def __init__(self) -> None:
        self._by_step: dict[_Bucket, FairQueue[QueuedTask]] = {}
        self._namespaces: dict[tuple[str, str], set[str]] = {}  # (queue, step) -> namespaces seen
        self._sticky: dict[str, dict[str, QueuedTask]] = {}
        self._windows: list[tuple[int, int, str]] = []  # (sticky_until_ms, order, token)
        self._where: dict[str, str | _Bucket] = {}  # token -> its sticky worker, or its bucket
        self._order: dict[str, int] = {}
        self._counter = itertools.count()

    def __contains__(self, token: str) -> bool:
        return token in self._where

    def add(self, task: QueuedTask, now_ms: int) -> None:
        self._detach(task.token)
        order = self._order.setdefault(task.token, next(self._counter))
        if task.sticky_worker_id is not None and now_ms < task.sticky_until_ms:
            self._sticky.setdefault(task.sticky_worker_id, {})[task.token] = task
            heapq.heappush(self._windows, (task.sticky_until_ms, order, task.token))
            self._where[task.token] = task.sticky_worker_id
        else:
            bucket = (task.task_queue, task.step, task.namespace)
            if bucket not in self._by_step:
                self._by_step[bucket] = FairQueue()
                self._namespaces.setdefault((task.task_queue, task.step), set()).add(task.namespace)
            self._by_step[bucket].add(task, order)
            self._where[task.token] = bucket

    def _detach(self, token: str) -> QueuedTask | None:
        where = self._where.pop(token, None)
        if where is None:
            return None
        if isinstance(where, str):
            sticky = self._sticky[where]
            task = sticky.pop(token)
            if not sticky:
                del self._sticky[where]
            return task
        return self._by_step[where].remove(token)

    def remove(self, token: str) -> QueuedTask | None:
        self._order.pop(token, None)
        return self._detach(token)

    def bucket_of(self, token: str) -> _Bucket | None:
        where = self._where.get(token)
        return None if where is None or isinstance(where, str) else where

    def unpark(self, bucket: _Bucket, flow_key: str | None) -> None:
        queue = self._by_step.get(bucket)
        if queue is not None:
            queue.unpark(flow_key)

    def take(
        self,
        task_queue: str,
        worker_id: str,
        wanted: frozenset[str],
        namespaces: frozenset[str] | None,
        admit: Admit,
        refused: list[tuple[_Bucket, QueuedTask]],
    ) -> QueuedTask | None:
        """This worker's sticky task first, else the first task by priority and turn of the steps and
        namespaces it serves that ``admit`` lets start (the refused heads go to ``refused``)."""
        for token, task in (self._sticky.get(worker_id) or {}).items():
            if (
                task.task_queue == task_queue
                and task.step in wanted
                and (namespaces is None or task.namespace in namespaces)
                and admit(task)
            ):
                return self.remove(token)
        best: tuple[tuple[int, int, int], QueuedTask, _Bucket] | None = None
        for step in wanted:
            seen = self._namespaces.get((task_queue, step))
            if not seen:
                continue
            for namespace in seen if namespaces is None else seen & namespaces:
                bucket = (task_queue, step, namespace)
                tasks = self._by_step.get(bucket)
                if not tasks:
                    continue

                def admitted(task: QueuedTask, bucket: _Bucket = bucket) -> bool:
                    if admit(task):
                        return True
                    refused.append((bucket, task))
                    return False

                found = tasks.peek(admitted)
                if found is not None and (best is None or found[0] < best[0]):
                    best = (found[0], found[1], bucket)
        if best is None:
            return None
        _, task, bucket = best
        self._by_step[bucket].pop(task)
        self._where.pop(task.token, None)
        self._order.pop(task.token, None)
        return task

    def expire(self, now_ms: int) -> list[QueuedTask]:
        """Tasks whose sticky window ended, moved where any worker can take them."""
        moved: list[QueuedTask] = []
        while self._windows and self._windows[0][0] <= now_ms:
            _, _, token = heapq.heappop(self._windows)
            where = self._where.get(token)
            if not isinstance(where, str):
                continue
            task = self._sticky[where][token]
            self.add(task, now_ms)  # past its window now: into the shared index, keeping its place
            moved.append(task)
        return moved

    def next_window_end_ms(self) -> int | None:
        return self._windows[0][0] if self._windows else None


def _remember(seen: dict[Any, int], key: Any, now_ms: int) -> None:
    """Record `key` as seen now, keeping `seen` ordered oldest first and bounded."""
    seen.pop(key, None)
    seen[key] = now_ms
    while len(seen) > MAX_POLL_RECORDS:
        del seen[next(iter(seen))]


class TaskBook:
    """Every task the dispatcher knows, and the pollers waiting for one; pure and clock-free."""

    def __init__(self, *, sticky_window_ms: int = 100) -> None:
        self.sticky_window_ms = sticky_window_ms
        self._future: list[tuple[int, int, str]] = []  # (visible_at_ms, order, token)
        self._queued: dict[str, QueuedTask] = {}
        self._queued_in: dict[str, int] = {}  # task queue -> its tasks in _queued (entries > 0 only)
        self._drained_at: dict[str, int] = {}  # task queue -> its last lease, bounded like the poll records
        self._ready = _ReadyTasks()
        self._leased: dict[str, Lease] = {}
        self._waiting: dict[str, list[Waiter]] = {}  # task queue -> waiters, oldest first
        self._reserved: dict[str, _Reservation] = {}  # token -> the waiter set aside for it
        self._undelivered: dict[str, list[GrantedTask]] = {}  # worker -> leased while it was not polling
        self._polled_queue: dict[str, int] = {}
        self._polled_step: dict[tuple[str, str], int] = {}
        self._polled_sets: dict[tuple[str, frozenset[str]], int] = {}  # when each set's steps were stamped
        # (worker, task queue, steps polled for): what each recent worker serves, so that a task is
        # kept for a sticky worker only if that worker takes such tasks.
        self._serves: dict[str, set[tuple[str, frozenset[str]]]] = {}  # oldest worker first, bounded
        self._counter = itertools.count()
        self._wakeup = False
        # Flow control: the gate, the keys it refused per bucket (parked until their window has
        # room), and when to look again at a held-back queue or key (lazy entries).
        self.gate = FlowGate()
        self._parked: dict[str | None, set[_Bucket]] = {}
        self._reopen: list[tuple[int, int, str, str | None]] = []  # (at_ms, order, "queue"|"key", name)
        self._reopen_at: dict[tuple[str, str | None], int] = {}
        self._trimmed_at_ms = 0

    # -- reading ---------------------------------------------------------------------------

    def queued(self, token: str) -> QueuedTask | None:
        return self._queued.get(token)

    def lease(self, token: str) -> Lease | None:
        return self._leased.get(token)

    def tokens(self) -> list[str]:
        """Every task known, queued or leased."""
        return [*self._queued, *self._leased]

    def counts(self) -> tuple[int, int]:
        """(queued, leased) tasks."""
        return len(self._queued), len(self._leased)

    def backlog(self, task_queue: str) -> QueueBacklog:
        """The queue's tasks waiting in memory for a worker, and when a worker last took one: O(1)."""
        return QueueBacklog(self._queued_in.get(task_queue, 0), self._drained_at.get(task_queue))

    def take_wakeup(self) -> bool:
        """True once after a change that may bring the next due time forward (a future task, a window)."""
        wakeup, self._wakeup = self._wakeup, False
        return wakeup

    def next_due_ms(self) -> int | None:
        """When a future task becomes visible, a sticky window ends or a held-back queue or key may go."""
        dues = [
            d
            for d in (
                self._future[0][0] if self._future else None,
                self._ready.next_window_end_ms(),
                self._reopen[0][0] if self._reopen else None,
            )
            if d
        ]
        return min(dues) if dues else None

    # -- restart ---------------------------------------------------------------------------

    def load(self, rows: Iterable[TaskRow], now_ms: int) -> list[Offer]:
        """Rebuild from the store; a lease held at a restart gets a fresh period to reconnect.

        The offers: queued tasks given to pollers already waiting (none at a start; some when a
        shard is taken while workers poll)."""
        offers: list[Offer] = []
        for row in rows:
            if row.state == "leased" and row.worker_id is not None:
                self._leased[row.token] = Lease(
                    token=row.token,
                    execution_id=row.execution_id,
                    worker_id=row.worker_id,
                    task_queue=row.task_queue,
                    namespace=namespace_of(row.workflow),
                    lease_ms=row.lease_ms,
                    heartbeat_required=row.heartbeat_required,
                    lease_expires_at_ms=max(row.lease_expires_at_ms or 0, now_ms + row.lease_ms),
                    attempt_deadline_ms=row.attempt_deadline_ms or now_ms + row.timeout_ms,
                    cancel_requested=row.cancel_requested,
                    progress=row.progress,
                )
            else:
                task = _queued_from(row, row.execution_id, row.workflow, sticky_worker_id=None, sticky_until_ms=0)
                offers += self._enqueue(task, now_ms)
        return offers

    # -- the engine's actions --------------------------------------------------------------

    def apply(self, execution_id: str, workflow: str, action: act.Action, now_ms: int) -> list[Offer]:
        """Follow one committed action; what to hand to which waiting poller as a result."""
        match action:
            case act.ScheduleTask():
                sticky = action.sticky_worker_id
                task = _queued_from(
                    action,
                    execution_id,
                    workflow,
                    sticky_worker_id=sticky if sticky is not None and self.serves(sticky, action) else None,
                    sticky_until_ms=max(now_ms, action.visible_at_ms) + self.sticky_window_ms,
                )
                return self._enqueue(task, now_ms)
            case act.LeaseTask():
                return self._leased_now(execution_id, workflow, action, now_ms)
            case act.DeleteTask():
                self.drop(action.token)
                self._leased.pop(action.token, None)
            case act.CancelTask():
                self.drop(action.token)
                leased = self._leased.get(action.token)
                if leased is not None:
                    leased.cancel_requested = True
        return []

    def _leased_now(self, execution_id: str, workflow: str, action: act.LeaseTask, now_ms: int) -> list[Offer]:
        queued = self._queued.get(action.token)
        reservation = self._reserved.pop(action.token, None)
        if queued is not None:  # seen after its commit: its start is recorded no earlier than its decision
            self._started(queued, now_ms)
            _remember(self._drained_at, queued.task_queue, now_ms)
        self._leased[action.token] = Lease(
            token=action.token,
            execution_id=execution_id,
            worker_id=action.worker_id,
            task_queue=queued.task_queue if queued else "",
            namespace=namespace_of(workflow),
            lease_ms=queued.lease_ms if queued else action.lease_expires_at_ms - now_ms,
            heartbeat_required=queued.heartbeat_required if queued else False,
            lease_expires_at_ms=action.lease_expires_at_ms,
            attempt_deadline_ms=action.attempt_deadline_ms,
            last_progress=action.last_progress,
            run=action.run,
        )
        self.drop(action.token)
        if reservation is None or queued is None:
            return []
        granted = self.granted(queued, reservation.workflow)
        assert granted is not None
        waiter = reservation.waiter
        if not waiter.listening:  # it stopped waiting meanwhile: to another poll of its worker
            return self._undelivered_to(
                waiter.worker_id, queued.task_queue, namespace_of(reservation.workflow), granted
            )
        waiter.listening = False
        return [Offer(waiter, granted)]

    def _undelivered_to(self, worker_id: str, task_queue: str, namespace: str, granted: GrantedTask) -> list[Offer]:
        """A lease whose poller stopped listening: offered at once to a poll (or a completion standing
        by) of the same worker waiting now, else kept for that worker's next poll or stand-by.

        Kept only, it waited for a poll that had not started yet: a worker whose polls were all
        parked in long waits, or whose slots all came back through completions, got it only when a
        poll ended, or never, and the step then waited out its whole lease (30 s stalls under load).
        """
        waiting = self._waiting.get(task_queue, [])
        other = next((w for w in waiting if w.worker_id == worker_id and w.accepts(granted.step, namespace)), None)
        if other is None:
            self._undelivered.setdefault(worker_id, []).append(granted)
            return []
        waiting.remove(other)
        if not waiting:
            del self._waiting[task_queue]
        other.listening = False
        return [Offer(other, granted)]

    def granted(self, task: QueuedTask, workflow: str) -> GrantedTask | None:
        """What the worker receives once `task`'s lease has committed; None if it is not leased."""
        leased = self._leased.get(task.token)
        if leased is None:
            return None
        return GrantedTask(
            token=task.token,
            execution_id=task.execution_id,
            workflow=workflow,
            step=task.step,
            attempt=task.attempt,
            poll=task.poll,
            arguments=task.arguments,
            attempt_deadline_ms=leased.attempt_deadline_ms,
            lease_ms=task.lease_ms,
            heartbeat_required=task.heartbeat_required,
            last_progress=leased.last_progress,
            run=leased.run,
        )

    # -- eager dispatch --------------------------------------------------------------------

    def reserve(
        self, workflow: str, actions: Sequence[act.Action], now_ms: int, *, decision_now_ms: int | None = None
    ) -> list[tuple[str, str]]:
        """Set aside a waiting poller for each new task one may take now: (token, worker id) pairs.

        A task a rate limit counts is reserved only when the caller says when its decision read the
        clock (``decision_now_ms``, the time its eager lease's StepStarted will bear): it is admitted
        at that time, so the history never shows a start earlier than its admission. Without it,
        such a task is admitted (and leased) after its commit instead.
        """
        reserved: list[tuple[str, str]] = []
        for action in actions:
            if not isinstance(action, act.ScheduleTask) or action.visible_at_ms > now_ms:
                continue
            key, limit = action.flow_key, action.key_rate_limit
            if self.gate.limits(action.task_queue, key, limit):
                if decision_now_ms is None or self.gate.block(action.task_queue, key, limit, decision_now_ms):
                    continue
            elif self.gate.queue_block(action.task_queue, now_ms) is not None:
                continue  # paused
            namespace, sticky = namespace_of(workflow), action.sticky_worker_id
            waiter = next(  # the first that may take it: hundreds may wait (every completion standing by)
                (
                    w
                    for w in self._waiting.get(action.task_queue, ())
                    if w.accepts(action.step, namespace) and (sticky is None or w.worker_id == sticky)
                ),
                None,
            )
            if waiter is None:
                continue
            self._waiting[action.task_queue].remove(waiter)
            self._reserved[action.token] = _Reservation(waiter, workflow)
            self.gate.charge(action.token, action.task_queue, key, limit)
            reserved.append((action.token, waiter.worker_id))
        return reserved

    def release(self, tokens: Iterable[str], now_ms: int) -> list[Offer]:
        """The commit failed or the lease was refused: each poller waits again, each task is offered again."""
        offers: list[Offer] = []
        for token in tokens:
            reservation = self._reserved.pop(token, None)
            if reservation is None:
                continue
            # A failed commit may have landed: a rate-limited task's place stays taken, as a start.
            self.gate.assume_started(token, now_ms)
            if reservation.waiter.listening:
                self._waiting.setdefault(reservation.waiter.task_queue, []).append(reservation.waiter)
            queued = self._queued.get(token)
            if queued is not None and token not in self._ready:
                offers += self._put_back(queued, now_ms)
        return offers

    # -- polls -----------------------------------------------------------------------------

    def polled(self, task_queue: str, steps: Iterable[str], now_ms: int, *, worker_id: str | None = None) -> None:
        """Record a poll, for `waiting_hint`, and, with ``worker_id``, for `serves`."""
        _remember(self._polled_queue, task_queue, now_ms)
        wanted = frozenset(steps)
        # A worker polls with the same few sets again and again, each of up to hundreds of steps: each
        # set's steps are stamped once per grain, not on every poll (the hint's window is a minute).
        polled_set = (task_queue, wanted)
        if now_ms - self._polled_sets.get(polled_set, -POLL_RECORD_GRAIN_MS) >= POLL_RECORD_GRAIN_MS:
            _remember(self._polled_sets, polled_set, now_ms)
            for step in wanted:
                _remember(self._polled_step, (task_queue, step), now_ms)
        if worker_id is not None:
            self._served(worker_id, task_queue, wanted)

    def _served(self, worker_id: str, task_queue: str, wanted: frozenset[str]) -> None:
        served = self._serves.pop(worker_id, None) or set()
        served.add((task_queue, wanted))  # a worker polls with a few sets only (its steps, its workflows)
        self._serves[worker_id] = served
        while len(self._serves) > MAX_POLL_RECORDS:
            del self._serves[next(iter(self._serves))]

    def serves(self, worker_id: str, action: act.ScheduleTask) -> bool:
        """Whether ``worker_id`` polled lately for tasks like ``action``'s.

        A task waits out its sticky window only for a worker that would take it: a worker that runs
        other steps (a YAML workflow's next step on another kind of worker, a code workflow's step
        whose worker runs only workflow code) would leave it waiting for nothing.
        """
        served = self._serves.get(worker_id, ())
        return any(queue == action.task_queue and action.step in wanted for queue, wanted in served)

    def take(
        self,
        worker_id: str,
        task_queue: str,
        steps: frozenset[str],
        namespaces: frozenset[str] | None,
        *,
        now_ms: int,
    ) -> QueuedTask | GrantedTask | None:
        """What a poll gets at once: a lease kept for this worker, else a ready task to lease, else None."""
        granted = self.take_undelivered(worker_id, steps)
        if granted is not None:
            return granted
        return self._take_ready(task_queue, worker_id, steps, namespaces, now_ms)

    def take_undelivered(self, worker_id: str, steps: frozenset[str]) -> GrantedTask | None:
        """A lease kept for this worker (its poller had stopped listening) that it still holds."""
        pending = self._undelivered.get(worker_id)
        while pending:
            granted = pending.pop(0)
            leased = self._leased.get(granted.token)
            if leased is not None and leased.worker_id == worker_id and granted.step in steps:
                if not pending:
                    del self._undelivered[worker_id]
                return granted
        self._undelivered.pop(worker_id, None)
        return None

    def _take_ready(
        self, task_queue: str, worker_id: str, steps: frozenset[str], namespaces: frozenset[str] | None, now_ms: int
    ) -> QueuedTask | None:
        """The first ready task this poll may take that flow control lets start, charged to its windows."""
        if self._held_back(task_queue, now_ms):
            return None
        refused: list[tuple[_Bucket, QueuedTask]] = []

        def admit(task: QueuedTask) -> bool:
            return self.gate.key_block(task.flow_key, task.key_rate_limit, now_ms) is None

        task = self._ready.take(task_queue, worker_id, steps, namespaces, admit, refused)
        for bucket, held in refused:
            self._park(bucket, held, now_ms)
        if task is not None:
            self.gate.charge(task.token, task.task_queue, task.flow_key, task.key_rate_limit)
        return task

    def wait(
        self,
        worker_id: str,
        task_queue: str,
        steps: frozenset[str],
        namespaces: frozenset[str] | None,
        *,
        in_reply: bool = False,
    ) -> Waiter:
        """A poll that found nothing waits here for an offer; ``in_reply``: a completion that stands by
        for its worker's next task, first in line for what the decisions meanwhile lease eagerly."""
        waiter = Waiter(worker_id, task_queue, steps, namespaces, in_reply=in_reply)
        waiting = self._waiting.setdefault(task_queue, [])
        if in_reply:
            waiting.insert(0, waiter)
        else:
            waiting.append(waiter)
        self._served(worker_id, task_queue, steps)
        return waiter

    def stop_waiting(self, waiter: Waiter) -> None:
        """The poll timed out or was cancelled: it is offered nothing more (a reservation turns undelivered)."""
        waiter.listening = False
        waiting = self._waiting.get(waiter.task_queue)
        if waiting is not None and waiter in waiting:
            waiting.remove(waiter)
            if not waiting:
                del self._waiting[waiter.task_queue]

    def give_back(self, item: QueuedTask | GrantedTask, now_ms: int) -> list[Offer]:
        """A poller that stopped waiting returns what it was offered: a task, or a lease kept for its worker."""
        if isinstance(item, GrantedTask):
            leased = self._leased.get(item.token)
            if leased is None:
                return []
            return self._undelivered_to(leased.worker_id, leased.task_queue, leased.namespace, item)
        return self._put_back(item, now_ms)

    def drop(self, token: str) -> None:
        """Forget a queued task: leased, refused, deleted or its execution gone."""
        task = self._queued.pop(token, None)
        if task is not None:
            self._count_out(task.task_queue)
            self._ready.remove(token)
            self._uncharge(token)

    def offer_later(self, token: str, delay_ms: int, now_ms: int) -> None:
        """Make a queued task visible again only after `delay_ms` (the store failed to lease it)."""
        task = self._queued.get(token)
        if task is None:
            return
        self._ready.remove(token)
        # The lease's commit may have landed unseen: counted as a start, so no limit is ever passed.
        self._started(task, now_ms)
        task.visible_at_ms = now_ms + delay_ms
        heapq.heappush(self._future, (task.visible_at_ms, next(self._counter), token))
        self._wakeup = True

    # -- time ------------------------------------------------------------------------------

    def promote(self, now_ms: int) -> list[Offer]:
        """Tasks whose backoff ended become ready; tasks whose sticky window ended go to anyone."""
        offers: list[Offer] = []
        while self._future and self._future[0][0] <= now_ms:
            _, _, token = heapq.heappop(self._future)
            task = self._queued.get(token)
            if task is not None and task.visible_at_ms <= now_ms:
                self._ready.add(task, now_ms)
                offers += self._offer(task, now_ms)
        for task in self._ready.expire(now_ms):
            offers += self._offer(task, now_ms)
        while self._reopen and self._reopen[0][0] <= now_ms:
            _, _, kind, name = heapq.heappop(self._reopen)
            if self._reopen_at.get((kind, name), now_ms + 1) > now_ms:
                continue  # a stale entry: moved later, or done already
            del self._reopen_at[(kind, name)]
            offers += self._reopened(kind, name, now_ms)
        if self._reopen_at == {} and len(self._reopen) > 0:
            self._reopen.clear()
        if now_ms - self._trimmed_at_ms >= 1000:  # O(windows): not on every promotion
            self._trimmed_at_ms = now_ms
            self.gate.trim(now_ms)
        return offers

    def expired(self, now_ms: int) -> list[Expiry]:
        """Leases whose worker went silent, or whose attempt ran past its deadline."""
        expiries: list[Expiry] = []
        for lease in self._leased.values():
            if lease.attempt_deadline_ms <= now_ms:
                expiries.append(Expiry(lease.token, lease.execution_id, "start_to_close", lease.progress))
            elif lease.lease_expires_at_ms <= now_ms:
                kind: Literal["heartbeat", "lease"] = "heartbeat" if lease.heartbeat_required else "lease"
                expiries.append(Expiry(lease.token, lease.execution_id, kind, lease.progress))
        return expiries

    def forget_lease(self, token: str) -> None:
        """The engine no longer knows the lease (the execution ended or is gone)."""
        self._leased.pop(token, None)

    def heartbeat(self, token: str, worker_id: str, progress: JSON, now_ms: int) -> HeartbeatResult:
        """Extend the holder's lease (never past the attempt's deadline) and keep its progress."""
        leased = self._leased.get(token)
        if leased is None or leased.worker_id != worker_id:
            return HeartbeatResult(cancel_requested=False, lease_lost=True, lease_expires_at_ms=0)
        leased.lease_expires_at_ms = min(now_ms + leased.lease_ms, leased.attempt_deadline_ms)
        if progress is not None:
            leased.progress = progress
        return HeartbeatResult(
            cancel_requested=leased.cancel_requested, lease_lost=False, lease_expires_at_ms=leased.lease_expires_at_ms
        )

    # -- what a waiting step is waiting for ------------------------------------------------

    def waiting_hint(self, token: str, now_ms: int, *, after_ms: int = 5_000, window_ms: int = 60_000) -> str | None:
        """Why a task visible for `after_ms` still waits, when no worker that polled lately serves it."""
        task = self._queued.get(token)
        if task is None or task.token not in self._ready:
            return None
        block = self.gate.block(task.task_queue, task.flow_key, task.key_rate_limit, now_ms)
        if block is not None:
            return block.reason
        if now_ms - task.visible_at_ms < after_ms:
            return None
        queue, step = task.task_queue, task.step
        waiters = self._waiting.get(queue, ())
        if any(step in w.steps for w in waiters):
            return None
        seconds = window_ms // 1000
        if not waiters and now_ms - self._polled_queue.get(queue, -window_ms - 1) > window_ms:
            return f"no worker has polled queue {queue} for step {step} in the last {seconds} s"
        if now_ms - self._polled_step.get((queue, step), -window_ms - 1) > window_ms:
            return f"workers poll queue {queue} but none serves step {step} (in the last {seconds} s)"
        return None

    # -- internals -------------------------------------------------------------------------

    def _count_out(self, task_queue: str) -> None:
        left = self._queued_in[task_queue] - 1
        if left:
            self._queued_in[task_queue] = left
        else:
            del self._queued_in[task_queue]

    def _enqueue(self, task: QueuedTask, now_ms: int) -> list[Offer]:
        replaced = self._queued.get(task.token)
        if replaced is not None:
            self._count_out(replaced.task_queue)
        self._queued[task.token] = task
        self._queued_in[task.task_queue] = self._queued_in.get(task.task_queue, 0) + 1
        if task.token in self._reserved:  # its lease is being decided for the waiter set aside
            return []
        if task.visible_at_ms > now_ms:
            heapq.heappush(self._future, (task.visible_at_ms, next(self._counter), task.token))
            self._wakeup = True
            return []
        self._ready.add(task, now_ms)
        return self._offer(task, now_ms)

    def _put_back(self, task: QueuedTask, now_ms: int) -> list[Offer]:
        if task.token not in self._queued:
            return []
        self._uncharge(task.token)
        self._ready.add(task, now_ms)
        return self._offer(task, now_ms)

    def _offer(self, task: QueuedTask, now_ms: int) -> list[Offer]:
        """A task became ready: the oldest waiting poller that serves it takes its first admitted task
        (this one, or one before it by priority and turn); inside its window, only its sticky worker."""
        waiting = self._waiting.get(task.task_queue)
        if not waiting or task.token in self._reserved:
            return []
        eligible = [w for w in waiting if not w.in_reply and w.accepts(task.step, task.namespace)]
        if not eligible:
            return []
        chosen = next((w for w in eligible if w.worker_id == task.sticky_worker_id), None)
        if chosen is None:
            if task.sticky_worker_id is not None and now_ms < task.sticky_until_ms:
                self._wakeup = True  # offered to anyone when the window ends
                return []
            chosen = eligible[0]
        return self._serve(chosen, now_ms)

    def _serve(self, waiter: Waiter, now_ms: int) -> list[Offer]:
        taken = self._take_ready(waiter.task_queue, waiter.worker_id, waiter.steps, waiter.namespaces, now_ms)
        if taken is None:
            return []
        self.stop_waiting(waiter)
        return [Offer(waiter, taken)]

    def _feed(self, task_queue: str, now_ms: int) -> list[Offer]:
        """Flow control let more go (resumed, a window has room): each waiting poll takes what it may."""
        offers: list[Offer] = []
        for waiter in list(self._waiting.get(task_queue, ())):
            if self._held_back(task_queue, now_ms):
                break
            if not waiter.in_reply:
                offers += self._serve(waiter, now_ms)
        return offers

    # -- flow control ----------------------------------------------------------------------

    def set_control(self, task_queue: str, control: QueueControl, now_ms: int) -> list[Offer]:
        """A queue's new setting (paused, resumed, a limit): what waiting polls may take now."""
        self.gate.set_control(task_queue, control)
        return self._feed(task_queue, now_ms)

    def queue_stats(self, now_ms: int) -> dict[str, QueueStats]:
        """Every queue with tasks, polls or a setting: what waits in it and why (O(tasks): for admins)."""
        ready: dict[str, int] = {}
        scheduled: dict[str, int] = {}
        running: dict[str, int] = {}
        for task in self._queued.values():
            counts = ready if task.token in self._ready or task.token in self._reserved else scheduled
            counts[task.task_queue] = counts.get(task.task_queue, 0) + 1
        for lease in self._leased.values():
            running[lease.task_queue] = running.get(lease.task_queue, 0) + 1
        names = set(ready) | set(scheduled) | set(running) | set(self._waiting) | set(self.gate.controls())
        names |= set(self._polled_queue)
        return {
            name: QueueStats(
                ready=ready.get(name, 0),
                scheduled=scheduled.get(name, 0),
                running=running.get(name, 0),
                pollers=sum(1 for w in self._waiting.get(name, ()) if w.listening),
                last_poll_ms=self._polled_queue.get(name),
                block=self.gate.queue_block(name, now_ms),
            )
            for name in sorted(names)
        }

    def _held_back(self, task_queue: str, now_ms: int) -> bool:
        block = self.gate.queue_block(task_queue, now_ms)
        if block is None:
            return False
        if block.until_ms is not None:
            self._reopen_later("queue", task_queue, block.until_ms)
        return True

    def _park(self, bucket: _Bucket, task: QueuedTask, now_ms: int) -> None:
        """A key's window is full: its tasks in ``bucket`` wait until it has room (or a lease resolves)."""
        self._parked.setdefault(task.flow_key, set()).add(bucket)
        block = self.gate.key_block(task.flow_key, task.key_rate_limit, now_ms)
        if block is not None and block.until_ms is not None:
            self._reopen_later("key", task.flow_key, block.until_ms)

    def _reopen_later(self, kind: str, name: str | None, at_ms: int) -> None:
        current = self._reopen_at.get((kind, name))
        if current is not None and current <= at_ms:
            return
        self._reopen_at[(kind, name)] = at_ms
        heapq.heappush(self._reopen, (at_ms, next(self._counter), kind, name))
        self._wakeup = True

    def _reopened(self, kind: str, name: str | None, now_ms: int) -> list[Offer]:
        """Look again at a queue or key that flow control held back: its waiting polls may take more."""
        if kind == "queue":
            return self._feed(name or "", now_ms)
        queues: set[str] = set()
        for bucket in self._parked.pop(name, ()):
            self._ready.unpark(bucket, name)
            queues.add(bucket[0])
        offers: list[Offer] = []
        for queue in sorted(queues):
            offers += self._feed(queue, now_ms)
        return offers

    def _started(self, task: QueuedTask, now_ms: int) -> None:
        """Record a start; what it held back in flight now waits for a known time."""
        self.gate.started(task.token, task.task_queue, task.flow_key, task.key_rate_limit, now_ms)
        block = self.gate.queue_block(task.task_queue, now_ms)
        if block is not None and block.until_ms is not None:
            self._reopen_later("queue", task.task_queue, block.until_ms)
        block = self.gate.key_block(task.flow_key, task.key_rate_limit, now_ms)
        if block is not None and block.until_ms is not None:
            self._reopen_later("key", task.flow_key, block.until_ms)

    def _uncharge(self, token: str) -> None:
        """The task's place in its windows is free again (never leased): look again at what it held back."""
        charge = self.gate.uncharge(token)
        if charge is None:
            return
        if charge.queue is not None:
            self._reopen_later("queue", charge.queue, 0)
        if charge.key is not None:
            self._reopen_later("key", charge.key, 0)
