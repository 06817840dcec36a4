"""Hands tasks to long-polling workers: queues per task queue, leases, stickiness, timeouts.

The queues are a cache of the `tasks` table: rebuilt from it at start, kept in step by
the actions of committed decisions. A lease is granted through the engine (a StepStarted
event), so a task is never handed out twice while its lease holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine import Reply
from ..engine import actions as act
from ..engine import commands as cmd
from ..store import StoreUnavailable, TaskRow
from .clock import Clock
from .database import Database
from .engine_service import EngineService, ExecutionNotFound

__all__ = ["Dispatcher", "GrantedTask", "HeartbeatResult", "namespace_of"]

log = logging.getLogger(__name__)


def namespace_of(workflow: str) -> str:
    """The namespace of a workflow key: ``ns`` of ``ns/name`` (operator), ``""`` in dev mode."""
    return workflow.rpartition("/")[0]


@dataclass(slots=True)
class _Queued:
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
    arguments: Any
    timeout_ms: int
    lease_ms: int
    heartbeat_required: bool


def _queued_from(
    source: TaskRow | act.ScheduleTask,
    execution_id: str,
    workflow: str,
    *,
    sticky_worker_id: str | None,
    sticky_until_ms: int,
) -> _Queued:
    """A queue entry from a stored task row (at start) or a fresh ScheduleTask action."""
    return _Queued(
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
    )


@dataclass(slots=True)
class _Leased:
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


@dataclass(frozen=True, slots=True)
class GrantedTask:
    token: str
    execution_id: str
    workflow: str
    step: str
    attempt: int
    poll: int
    arguments: Any
    attempt_deadline_ms: int
    lease_ms: int
    heartbeat_required: bool


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    cancel_requested: bool
    lease_lost: bool
    lease_expires_at_ms: int


@dataclass(eq=False)
class _Poller:
    worker_id: str
    task_queue: str
    steps: frozenset[str]
    namespaces: frozenset[str] | None  # None: tasks of every namespace

    def accepts(self, step: str, namespace: str) -> bool:
        return (
            not self.future.done() and step in self.steps and (self.namespaces is None or namespace in self.namespaces)
        )

    # A queued task to lease, or a task already leased to this worker by an eager dispatch.
    future: asyncio.Future[_Queued | GrantedTask] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(slots=True)
class _Reservation:
    poller: _Poller
    workflow: str


class _ReadyTasks:
    """Tasks a worker may take now, indexed so a poll never scans the queue.

    By (task queue, step, namespace) in arrival order; a task inside its sticky window waits
    under its worker instead, and moves to the shared index when the window ends (`expire`).
    With 100,000 queued tasks a poll costs one lookup per step and namespace the worker serves.
    """

    def __init__(self) -> None:
        self._by_step: dict[tuple[str, str, str], dict[str, _Queued]] = {}
        self._namespaces: dict[tuple[str, str], set[str]] = {}  # (queue, step) -> namespaces seen
        self._sticky: dict[str, dict[str, _Queued]] = {}
        self._windows: list[tuple[int, int, str]] = []  # (sticky_until_ms, order, token)
        self._holder: dict[str, dict[str, _Queued]] = {}  # token -> the dict it sits in
        self._order: dict[str, int] = {}
        self._counter = itertools.count()

    def __contains__(self, token: str) -> bool:
        return token in self._holder

    def add(self, task: _Queued, now_ms: int) -> None:
        previous = self._holder.pop(task.token, None)
        if previous is not None:
            previous.pop(task.token, None)
        order = self._order.setdefault(task.token, next(self._counter))
        if task.sticky_worker_id is not None and now_ms < task.sticky_until_ms:
            holder = self._sticky.setdefault(task.sticky_worker_id, {})
            heapq.heappush(self._windows, (task.sticky_until_ms, order, task.token))
        else:
            key = (task.task_queue, task.step, task.namespace)
            if key not in self._by_step:
                self._by_step[key] = {}
                self._namespaces.setdefault((task.task_queue, task.step), set()).add(task.namespace)
            holder = self._by_step[key]
        holder[task.token] = task
        self._holder[task.token] = holder

    def remove(self, token: str) -> _Queued | None:
        holder = self._holder.pop(token, None)
        self._order.pop(token, None)
        return None if holder is None else holder.pop(token, None)

    def take(
        self, task_queue: str, worker_id: str, wanted: frozenset[str], namespaces: frozenset[str] | None
    ) -> _Queued | None:
        """This worker's sticky task first, else the oldest task of the steps and namespaces it serves."""
        for token, task in (self._sticky.get(worker_id) or {}).items():
            if (
                task.task_queue == task_queue
                and task.step in wanted
                and (namespaces is None or task.namespace in namespaces)
            ):
                return self.remove(token)
        oldest: _Queued | None = None
        for step in wanted:
            seen = self._namespaces.get((task_queue, step))
            if not seen:
                continue
            for namespace in seen if namespaces is None else seen & namespaces:
                tasks = self._by_step.get((task_queue, step, namespace))
                if tasks:
                    head = next(iter(tasks.values()))
                    if oldest is None or self._order[head.token] < self._order[oldest.token]:
                        oldest = head
        return None if oldest is None else self.remove(oldest.token)

    def expire(self, now_ms: int) -> list[_Queued]:
        """Tasks whose sticky window ended, moved where any worker can take them."""
        moved: list[_Queued] = []
        while self._windows and self._windows[0][0] <= now_ms:
            _, _, token = heapq.heappop(self._windows)
            holder = self._holder.get(token)
            task = holder.get(token) if holder is not None else None
            if task is None or holder is self._by_step.get((task.task_queue, task.step, task.namespace)):
                continue
            self.add(task, now_ms)  # past its window now: into the shared index, keeping its place
            moved.append(task)
        return moved

    def next_window_end_ms(self) -> int | None:
        return self._windows[0][0] if self._windows else None


class Dispatcher:
    def __init__(
        self,
        db: Database,
        engine: EngineService,
        *,
        clock: Clock,
        sticky_window_ms: int = 100,
        max_poll_wait_ms: int = 30_000,
        sweep_interval_s: float = 0.1,
        retry_after_error_ms: int = 1000,
    ) -> None:
        self.db = db
        self.engine = engine
        self.clock = clock
        self.sticky_window_ms = sticky_window_ms
        self.max_poll_wait_ms = max_poll_wait_ms
        self.sweep_interval_s = sweep_interval_s
        self.retry_after_error_ms = retry_after_error_ms
        self._store_down = False
        self._ready = _ReadyTasks()
        self._future: list[tuple[int, int, str]] = []
        self._queued: dict[str, _Queued] = {}
        self._leased: dict[str, _Leased] = {}
        self._pollers: dict[str, list[_Poller]] = {}
        self._counter = itertools.count()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._workflows: dict[str, str] = {}
        self._reserved: dict[str, _Reservation] = {}  # token -> poller set aside by `reserve`
        self._undelivered: dict[str, list[GrantedTask]] = {}  # worker -> leased while it was not polling
        engine.add_listener(self.on_actions)
        engine.set_eager_dispatch(self)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild the queues from the store; leases held at a restart get a fresh period."""
        now = self.clock.now_ms()
        rows: list[TaskRow] = await self.db.run(self.db.store.load_tasks)
        for row in rows:
            self._workflows[row.execution_id] = row.workflow
            if row.state == "leased" and row.worker_id is not None:
                self._leased[row.token] = _Leased(
                    token=row.token,
                    execution_id=row.execution_id,
                    worker_id=row.worker_id,
                    task_queue=row.task_queue,
                    namespace=namespace_of(row.workflow),
                    lease_ms=row.lease_ms,
                    heartbeat_required=row.heartbeat_required,
                    lease_expires_at_ms=max(row.lease_expires_at_ms or 0, now + row.lease_ms),
                    attempt_deadline_ms=row.attempt_deadline_ms or now + row.timeout_ms,
                    cancel_requested=row.cancel_requested,
                )
            else:
                self._enqueue(
                    _queued_from(row, row.execution_id, row.workflow, sticky_worker_id=None, sticky_until_ms=0)
                )
        log.info("dispatcher loaded %d queued and %d leased tasks", len(self._queued), len(self._leased))
        self._tasks = [
            asyncio.create_task(self._promote_loop(), name="dispatcher-promote"),
            asyncio.create_task(self._sweep_loop(), name="dispatcher-sweep"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for pollers in self._pollers.values():
            for poller in pollers:
                if not poller.future.done():
                    poller.future.cancel()

    # -- engine hooks --------------------------------------------------------------------

    def on_actions(self, execution_id: str, workflow: str, actions: list[act.Action]) -> None:
        for action in actions:
            match action:
                case act.ScheduleTask():
                    now = self.clock.now_ms()
                    self._enqueue(
                        _queued_from(
                            action,
                            execution_id,
                            workflow,
                            sticky_worker_id=action.sticky_worker_id,
                            sticky_until_ms=max(now, action.visible_at_ms) + self.sticky_window_ms,
                        )
                    )
                case act.LeaseTask():
                    queued = self._queued.get(action.token)
                    reservation = self._reserved.pop(action.token, None)
                    self._leased[action.token] = _Leased(
                        token=action.token,
                        execution_id=execution_id,
                        worker_id=action.worker_id,
                        task_queue=queued.task_queue if queued else "",
                        namespace=namespace_of(workflow),
                        lease_ms=queued.lease_ms if queued else action.lease_expires_at_ms - self.clock.now_ms(),
                        heartbeat_required=queued.heartbeat_required if queued else False,
                        lease_expires_at_ms=action.lease_expires_at_ms,
                        attempt_deadline_ms=action.attempt_deadline_ms,
                    )
                    self._drop_queued(action.token)
                    if reservation is not None and queued is not None:
                        self._deliver(reservation, queued, action)
                case act.DeleteTask():
                    self._drop_queued(action.token)
                    self._leased.pop(action.token, None)
                case act.CancelTask():
                    self._drop_queued(action.token)
                    leased = self._leased.get(action.token)
                    if leased is not None:
                        leased.cancel_requested = True
                case _:
                    pass

    # -- eager dispatch (the engine asks while deciding) ------------------------------------------

    def reserve(self, execution_id: str, workflow: str, actions: Sequence[act.Action]) -> list[cmd.TaskStarted]:
        """Set aside a waiting poller for each new task that one can take now, by the usual rules."""
        leases: list[cmd.TaskStarted] = []
        now = self.clock.now_ms()
        for action in actions:
            if not isinstance(action, act.ScheduleTask) or action.visible_at_ms > now:
                continue
            poller = self._waiting_poller(action, namespace_of(workflow))
            if poller is None:
                continue
            self._pollers[action.task_queue].remove(poller)
            self._reserved[action.token] = _Reservation(poller, workflow)
            leases.append(cmd.TaskStarted(action.token, poller.worker_id))
        return leases

    def release(self, commands: Sequence[cmd.TaskStarted]) -> None:
        for command in commands:
            reservation = self._reserved.pop(command.token, None)
            if reservation is None:
                continue
            poller = reservation.poller
            if not poller.future.done():
                self._pollers.setdefault(poller.task_queue, []).append(poller)
            queued = self._queued.get(command.token)
            if queued is not None and queued.token not in self._ready:
                self._put_back(queued)  # it was scheduled but its lease was refused: offer it as usual

    def _waiting_poller(self, action: act.ScheduleTask, namespace: str) -> _Poller | None:
        """The poller that would get this task right now: the sticky worker's, else any allowed."""
        eligible = [p for p in self._pollers.get(action.task_queue, ()) if p.accepts(action.step, namespace)]
        if action.sticky_worker_id is None:
            return eligible[0] if eligible else None
        return next((p for p in eligible if p.worker_id == action.sticky_worker_id), None)

    def _deliver(self, reservation: _Reservation, queued: _Queued, lease: act.LeaseTask) -> None:
        granted = GrantedTask(
            token=queued.token,
            execution_id=queued.execution_id,
            workflow=reservation.workflow,
            step=queued.step,
            attempt=queued.attempt,
            poll=queued.poll,
            arguments=queued.arguments,
            attempt_deadline_ms=lease.attempt_deadline_ms,
            lease_ms=queued.lease_ms,
            heartbeat_required=queued.heartbeat_required,
        )
        poller = reservation.poller
        if poller.future.done():  # it stopped waiting meanwhile: its worker's next poll takes it
            self._undelivered.setdefault(poller.worker_id, []).append(granted)
        else:
            poller.future.set_result(granted)

    def _take_undelivered(self, worker_id: str, wanted: frozenset[str]) -> GrantedTask | None:
        pending = self._undelivered.get(worker_id)
        while pending:
            granted = pending.pop(0)
            leased = self._leased.get(granted.token)
            if leased is not None and leased.worker_id == worker_id and granted.step in wanted:
                if not pending:
                    del self._undelivered[worker_id]
                return granted
        self._undelivered.pop(worker_id, None)
        return None

    def remember_workflow(self, execution_id: str, workflow: str) -> None:
        self._workflows[execution_id] = workflow

    # -- worker calls --------------------------------------------------------------------

    async def poll(
        self,
        *,
        worker_id: str,
        task_queue: str,
        steps: Iterable[str],
        wait_ms: int,
        namespaces: frozenset[str] | None = None,
    ) -> GrantedTask | None:
        """Long-poll: a leased task, or None when nothing came within the wait.

        ``namespaces`` limits the tasks to those namespaces' executions (None: any).
        """
        wanted = frozenset(steps)
        deadline = asyncio.get_running_loop().time() + min(max(wait_ms, 0), self.max_poll_wait_ms) / 1000
        while True:
            undelivered = self._take_undelivered(worker_id, wanted) if self._undelivered else None
            if undelivered is not None:
                return undelivered
            candidate: _Queued | GrantedTask | None = self._ready.take(task_queue, worker_id, wanted, namespaces)
            if candidate is None:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    return None
                poller = _Poller(worker_id, task_queue, wanted, namespaces)
                self._pollers.setdefault(task_queue, []).append(poller)
                try:
                    candidate = await asyncio.wait_for(asyncio.shield(poller.future), remaining)
                except (TimeoutError, asyncio.CancelledError) as stopped:
                    if poller.future.done() and not poller.future.cancelled():
                        self._give_back(poller.future.result())
                    else:
                        poller.future.cancel()  # a reservation in flight now goes to `_undelivered`
                    if isinstance(stopped, TimeoutError):
                        return None
                    raise
                finally:
                    waiting = self._pollers.get(task_queue, [])
                    if poller in waiting:
                        waiting.remove(poller)
            if isinstance(candidate, GrantedTask):
                return candidate
            granted = await self._grant(candidate, worker_id)
            if granted is not None:
                return granted

    def _give_back(self, task: _Queued | GrantedTask) -> None:
        """A poller that stops waiting returns what it was handed: a queued task, or a lease."""
        if isinstance(task, GrantedTask):
            leased = self._leased.get(task.token)
            if leased is not None:
                self._undelivered.setdefault(leased.worker_id, []).append(task)
        else:
            self._put_back(task)

    async def heartbeat(self, *, token: str, worker_id: str, progress: Any) -> HeartbeatResult:
        leased = self._leased.get(token)
        if leased is None or leased.worker_id != worker_id:
            return HeartbeatResult(cancel_requested=False, lease_lost=True, lease_expires_at_ms=0)
        now = self.clock.now_ms()
        leased.lease_expires_at_ms = min(now + leased.lease_ms, leased.attempt_deadline_ms)
        await self.db.run(
            self.db.store.extend_lease,
            token,
            worker_id=worker_id,
            lease_expires_at_ms=leased.lease_expires_at_ms,
            progress=progress,
        )
        return HeartbeatResult(
            cancel_requested=leased.cancel_requested, lease_lost=False, lease_expires_at_ms=leased.lease_expires_at_ms
        )

    # -- internals -----------------------------------------------------------------------

    def _enqueue(self, task: _Queued) -> None:
        self._queued[task.token] = task
        if task.visible_at_ms > self.clock.now_ms():
            heapq.heappush(self._future, (task.visible_at_ms, next(self._counter), task.token))
            self._wakeup.set()
            return
        self._ready.add(task, self.clock.now_ms())
        self._offer(task)

    def _offer(self, task: _Queued) -> None:
        """Give a ready task to a waiting poller: its sticky worker first, then anyone allowed."""
        pollers = self._pollers.get(task.task_queue)
        if not pollers or task.token in self._reserved:
            return
        now = self.clock.now_ms()
        eligible = [p for p in pollers if p.accepts(task.step, task.namespace)]
        if not eligible:
            return
        sticky = [p for p in eligible if p.worker_id == task.sticky_worker_id]
        if sticky:
            chosen = sticky[0]
        elif task.sticky_worker_id is None or now >= task.sticky_until_ms:
            chosen = eligible[0]
        else:
            self._wakeup.set()
            return
        self._ready.remove(task.token)
        chosen.future.set_result(task)

    def _offer_later(self, task: _Queued, delay_ms: int) -> None:
        """Make a queued task visible again only after `delay_ms` (the store failed to lease it)."""
        if task.token not in self._queued:
            return
        self._ready.remove(task.token)
        task.visible_at_ms = self.clock.now_ms() + delay_ms
        heapq.heappush(self._future, (task.visible_at_ms, next(self._counter), task.token))
        self._wakeup.set()

    def _put_back(self, task: _Queued) -> None:
        if task.token in self._queued:
            self._ready.add(task, self.clock.now_ms())
            self._offer(task)

    def _drop_queued(self, token: str) -> None:
        task = self._queued.pop(token, None)
        if task is not None:
            self._ready.remove(token)

    async def _grant(self, task: _Queued, worker_id: str) -> GrantedTask | None:
        try:
            decision = await self.engine.handle(task.execution_id, cmd.TaskStarted(task.token, worker_id))
        except ExecutionNotFound:
            self._drop_queued(task.token)
            return None
        except Exception as error:
            # The store is unreachable (a database restart) or refused: offer the task again later,
            # not at once, or the waiting pollers take it back and fail again in a busy loop.
            log.warning(
                "could not lease task %s (%s: %s); offering it again in %d ms",
                task.token,
                type(error).__name__,
                error,
                self.retry_after_error_ms,
            )
            self._offer_later(task, self.retry_after_error_ms)
            return None
        if decision.reply != Reply.ACCEPTED:
            self._drop_queued(task.token)
            return None
        leased = self._leased.get(task.token)
        if leased is None:
            return None
        workflow = decision.state.workflow if decision.state else self._workflows.get(task.execution_id, "")
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
        )

    async def _promote_loop(self) -> None:
        """Move tasks whose backoff ended to the ready queues; re-offer tasks whose stickiness ran out."""
        while True:
            now = self.clock.now_ms()
            while self._future and self._future[0][0] <= now:
                _, _, token = heapq.heappop(self._future)
                task = self._queued.get(token)
                if task is not None:
                    self._ready.add(task, now)
                    self._offer(task)
            for task in self._ready.expire(now):
                self._offer(task)
            next_due = min(
                self._future[0][0] if self._future else now + 1000, self._ready.next_window_end_ms() or now + 1000
            )
            sleep_s = max(0.001, min((next_due - now) / 1000, self.sticky_window_ms / 1000 or 0.05, 1.0))
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), sleep_s)

    async def _sweep_loop(self) -> None:
        """Time out leases whose worker went silent and attempts that ran past their timeout."""
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            now = self.clock.now_ms()
            expired = [
                lease
                for lease in self._leased.values()
                if lease.lease_expires_at_ms <= now or lease.attempt_deadline_ms <= now
            ]
            for lease in expired:
                kind: Any
                if lease.attempt_deadline_ms <= now:
                    kind = "start_to_close"
                else:
                    kind = "heartbeat" if lease.heartbeat_required else "lease"
                try:
                    decision = await self.engine.handle(lease.execution_id, cmd.TaskTimedOut(lease.token, kind))
                except ExecutionNotFound:
                    decision = None
                except StoreUnavailable as error:
                    self._store_unavailable(error)
                    break  # the other expired leases wait for the next sweep, and the store
                except Exception:
                    log.exception("could not time out task %s", lease.token)
                    continue
                self._store_available()
                if decision is None or decision.reply != Reply.ACCEPTED:
                    self._leased.pop(lease.token, None)
                    try:
                        await self.db.run(self.db.store.delete_task, lease.token)
                    except StoreUnavailable as error:  # the row is dropped when it times out after a restart
                        self._store_unavailable(error)

    def _store_unavailable(self, error: StoreUnavailable) -> None:
        """One warning per outage: the sweep runs ten times a second, once per expired lease."""
        if not self._store_down:
            self._store_down = True
            log.warning("the store is unavailable (%s): expired leases are timed out once it is back", error)

    def _store_available(self) -> None:
        if self._store_down:
            self._store_down = False
            log.info("the store is available again: timing out expired leases")
