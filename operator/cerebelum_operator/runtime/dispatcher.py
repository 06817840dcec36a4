"""Hands tasks to long-polling workers: the async glue around the pure `TaskBook`.

The book (`task_lifecycle.py`) decides every step of a task's life and states its invariants;
this module only does the I/O those decisions need: it asks the engine for leases and timeouts,
writes heartbeats to the store, and resolves the futures of waiting polls. The book is a cache of
the `tasks` table: rebuilt from it at start, kept in step by the actions of committed decisions.
A lease is granted through the engine (a StepStarted event), so a task is never handed out twice
while its lease holds, and reaches a worker only once that lease is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from ..engine import Reply
from ..engine import actions as act
from ..engine import commands as cmd
from ..engine.ids import TaskToken
from ..store import RateLimitReached, StoreUnavailable, TaskRow
from .clock import Clock
from .database import Database
from .engine_service import EngineService, ExecutionNotFound
from .outage import OutageLog
from .queue_gate import QueueControl
from .task_lifecycle import (
    GrantedTask,
    HeartbeatResult,
    Offer,
    QueueBacklog,
    QueuedTask,
    QueueStats,
    TaskBook,
    Waiter,
)
from .wakeup import Wakeup
from .workflow_key import namespace_of

__all__ = ["Dispatcher", "GrantedTask", "HeartbeatResult", "namespace_of"]

log = logging.getLogger(__name__)


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
        prune_interval_ms: int = 60_000,
    ) -> None:
        self.db = db
        self.engine = engine
        self.clock = clock
        self.sticky_window_ms = sticky_window_ms
        self.max_poll_wait_ms = max_poll_wait_ms
        self.sweep_interval_s = sweep_interval_s
        self.retry_after_error_ms = retry_after_error_ms
        self.prune_interval_ms = prune_interval_ms
        self.book = TaskBook(sticky_window_ms=sticky_window_ms)
        self._futures: dict[Waiter, asyncio.Future[QueuedTask | GrantedTask]] = {}
        self._wakeup = Wakeup(clock=clock)
        self._tasks: list[asyncio.Task[None]] = []
        self._workflows: dict[str, str] = {}
        self._store_outage = OutageLog(
            log,
            what="the store is unavailable: expired leases are timed out once it is back",
            recovered="the store is available again: timing out expired leases",
        )
        engine.add_listener(self.on_actions)
        engine.set_eager_dispatch(self)
        engine.set_task_view(self)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild the book from the store; leases held at a restart get a fresh period."""
        # Flow control first: the windows rebuilt from the starts the store recorded, not empty.
        now = self.clock.now_ms()
        queues = await self.db.run(self.db.store.list_task_queues)
        starts = await self.db.run(self.db.store.live_task_starts, now)
        controls = {q.name: QueueControl(paused=q.paused, note=q.note, rate_limit=q.rate_limit) for q in queues}
        self.book.gate.load(controls, starts, now)
        rows: list[TaskRow] = await self.db.run(self.db.store.load_tasks)
        for row in rows:
            self._workflows[row.execution_id] = row.workflow
        self.book.load(rows, self.clock.now_ms())
        queued, leased = self.book.counts()
        log.info(
            "dispatcher loaded %d queued and %d leased tasks, %d queue settings and %d recent starts",
            queued,
            leased,
            len(controls),
            len(starts),
        )
        self._tasks = [
            asyncio.create_task(self._promote_loop(), name="dispatcher-promote"),
            asyncio.create_task(self._sweep_loop(), name="dispatcher-sweep"),
        ]

    def adopt(self, rows: Iterable[TaskRow]) -> None:
        """Take on the tasks of shards just taken (`ShardHost`): as at a start, a lease gets a fresh period."""
        rows = list(rows)
        for row in rows:
            self._workflows[row.execution_id] = row.workflow
        self._hand_out(self.book.load(rows, self.clock.now_ms()))
        self._wake_if_needed()

    def disown(self, tokens: Iterable[str]) -> None:
        """Forget the tasks of shards handed over: their next owner dispatches them."""
        for token in tokens:
            self.book.drop(token)
            self.book.forget_lease(token)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for future in self._futures.values():
            if not future.done():
                future.cancel()

    # -- engine hooks --------------------------------------------------------------------

    def on_actions(self, execution_id: str, workflow: str, actions: list[act.Action]) -> None:
        now = self.clock.now_ms()
        for action in actions:
            self._hand_out(self.book.apply(execution_id, workflow, action, now))
        self._wake_if_needed()

    def reserve(
        self, execution_id: str, workflow: str, actions: Sequence[act.Action], *, now_ms: int | None = None
    ) -> list[cmd.TaskStarted]:
        """Eager dispatch: set aside a waiting poller for each new task one can take now.

        ``now_ms``: the time the decision read (its events' time); with it, rate-limited tasks are
        leased eagerly too (`TaskBook.reserve`). Not when engines split the shards: the store then
        counts every engine's starts and may refuse the lease (`RateLimitReached`), which must not
        fail the decision that scheduled the task; the task is leased on its own, after the commit.
        """
        decision_now_ms = None if self.engine.split else now_ms
        reserved = self.book.reserve(workflow, actions, self.clock.now_ms(), decision_now_ms=decision_now_ms)
        return [cmd.TaskStarted(token, worker_id) for token, worker_id in reserved]

    def release(self, commands: Sequence[cmd.TaskStarted]) -> None:
        self._hand_out(self.book.release((c.token for c in commands), self.clock.now_ms()))
        self._wake_if_needed()

    def set_control(self, task_queue: str, control: QueueControl) -> None:
        """A queue's setting changed (already written to the store): apply it, and serve waiting polls."""
        self._hand_out(self.book.set_control(task_queue, control, self.clock.now_ms()))
        self._wake_if_needed()

    def queue_stats(self) -> dict[str, QueueStats]:
        return self.book.queue_stats(self.clock.now_ms())

    def backlog(self, task_queue: str) -> QueueBacklog:
        """What the queue holds for its workers now (the timers hold a wake back on it): O(1)."""
        return self.book.backlog(task_queue)

    def remember_workflow(self, execution_id: str, workflow: str) -> None:
        self._workflows[execution_id] = workflow

    # -- what the engine service shows -----------------------------------------------------

    def progress_of(self, token: str) -> Any:
        """The latest heartbeat progress of a leased task (None without one)."""
        lease = self.book.lease(token)
        return None if lease is None else lease.progress

    def waiting_hint(self, token: str) -> str | None:
        return self.book.waiting_hint(token, self.clock.now_ms())

    def holder_of(self, token: str) -> str | None:
        lease = self.book.lease(token)
        return None if lease is None else lease.worker_id

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
        self.book.polled(task_queue, wanted, self.clock.now_ms(), worker_id=worker_id)
        deadline = self.clock.now_s() + min(max(wait_ms, 0), self.max_poll_wait_ms) / 1000
        while True:
            candidate = self.book.take(worker_id, task_queue, wanted, namespaces, now_ms=self.clock.now_ms())
            if candidate is None:
                remaining = deadline - self.clock.now_s()
                if remaining <= 0:
                    return None
                candidate = await self._wait(self.book.wait(worker_id, task_queue, wanted, namespaces), remaining)
                if candidate is None:
                    return None
            if isinstance(candidate, GrantedTask):
                return candidate
            granted = await self._grant(candidate, worker_id)
            if granted is not None:
                return granted

    def stand_by(
        self, *, worker_id: str, task_queue: str, steps: Iterable[str], namespaces: frozenset[str] | None = None
    ) -> Waiter:
        """A completing worker offers its freed slot: a task that decisions lease eagerly meanwhile (its
        execution's next step above all) may go to it, for the completion's reply. End with `collect`."""
        wanted = frozenset(steps)
        waiter = self.book.wait(worker_id, task_queue, wanted, namespaces, in_reply=True)
        future = self._futures[waiter] = asyncio.get_running_loop().create_future()
        kept = self.book.take_undelivered(worker_id, wanted)  # a lease whose poll stopped: this reply takes it
        if kept is not None:
            self.book.stop_waiting(waiter)
            future.set_result(kept)
        return waiter

    def collect(self, waiter: Waiter) -> GrantedTask | None:
        """What a `stand_by` got: a task leased to its worker, or None (it stops standing by; a lease
        still being committed for it is kept for the worker's next poll, as for a cancelled poll)."""
        future = self._futures.pop(waiter)
        if not future.done():
            future.cancel()
            self.book.stop_waiting(waiter)
            return None
        item = future.result()
        if isinstance(item, GrantedTask):
            return item
        self._hand_out(self.book.give_back(item, self.clock.now_ms()))  # never offered one: in_reply
        return None

    def keep_for_next_poll(self, granted: GrantedTask) -> None:
        """A lease `collect` returned that the reply cannot carry after all (a batched reply already at
        its size limit): kept for its worker's next poll or stand-by, as a lease whose poll stopped."""
        self._hand_out(self.book.give_back(granted, self.clock.now_ms()))

    async def _wait(self, waiter: Waiter, seconds: float) -> QueuedTask | GrantedTask | None:
        """Wait for an offer on the clock; a poll that stops (timeout, cancel) gives back what came late."""
        future: asyncio.Future[QueuedTask | GrantedTask] = asyncio.get_running_loop().create_future()
        self._futures[waiter] = future
        timer: asyncio.Future[Any] = self.clock.timer(seconds)
        try:
            await asyncio.wait((future, timer), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # offered as the poll was cancelled: not lost
                self._hand_out(self.book.give_back(future.result(), self.clock.now_ms()))
            raise
        finally:
            timer.cancel()
            del self._futures[waiter]
            if not future.done():
                future.cancel()
            if future.cancelled():  # a reservation in flight now stays for the worker's next poll
                self.book.stop_waiting(waiter)
        return None if future.cancelled() else future.result()

    async def heartbeat(self, *, token: str, worker_id: str, progress: Any) -> HeartbeatResult:
        before = self.progress_of(token)
        result = self.book.heartbeat(token, worker_id, progress, self.clock.now_ms())
        if result.lease_lost:
            return result
        if progress is not None and progress != before:
            self.engine.progress_changed(TaskToken.parse(token).execution_id)
        await self.db.run(
            self.db.store.extend_lease,
            token,
            worker_id=worker_id,
            lease_expires_at_ms=result.lease_expires_at_ms,
            progress=self.progress_of(token),  # a heartbeat without progress keeps the last one
        )
        return result

    # -- internals -----------------------------------------------------------------------

    def _hand_out(self, offers: list[Offer]) -> None:
        now = self.clock.now_ms()
        for waiter, item in offers:
            future = self._futures.get(waiter)
            if future is None or future.done():  # cannot happen while the book keeps invariant 3
                self._hand_out(self.book.give_back(item, now))
            else:
                future.set_result(item)

    def _wake_if_needed(self) -> None:
        if self.book.take_wakeup():
            self._wakeup.poke()

    async def _grant(self, task: QueuedTask, worker_id: str) -> GrantedTask | None:
        """Lease a task a poll took; a poll cancelled meanwhile (its worker went away) loses nothing.

        The lease is decided to the end even then: cancelled half-way, its commit might land
        unseen, leaving the task neither offered again nor leased in the book, so its execution
        would wait until the next restart. A lease that lands is kept for the worker's next poll
        (or expires like any other), as for eager dispatch.
        """
        leasing = asyncio.ensure_future(self._lease(task, worker_id))
        try:
            return await asyncio.shield(leasing)
        except asyncio.CancelledError:
            leasing.add_done_callback(self._keep_for_worker)
            raise

    def _keep_for_worker(self, leasing: asyncio.Future[GrantedTask | None]) -> None:
        if not leasing.cancelled() and leasing.exception() is None and (granted := leasing.result()) is not None:
            self._hand_out(self.book.give_back(granted, self.clock.now_ms()))

    async def _lease(self, task: QueuedTask, worker_id: str) -> GrantedTask | None:
        try:
            decision = await self.engine.handle(task.execution_id, cmd.TaskStarted(task.token, worker_id))
        except ExecutionNotFound:
            self.book.drop(task.token)
            return None
        except RateLimitReached as full:  # the other engines' starts fill the window: not a failure
            # The window holds until it has room; the task, never started, waits in line again.
            self.book.gate.hold(full.task_queue, full.key, full.frees_at_ms)
            self._hand_out(self.book.give_back(task, self.clock.now_ms()))
            self._wake_if_needed()
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
            self.book.offer_later(task.token, self.retry_after_error_ms, self.clock.now_ms())
            self._wake_if_needed()
            return None
        if decision.reply != Reply.ACCEPTED:
            self.book.drop(task.token)
            return None
        workflow = decision.state.workflow if decision.state else self._workflows.get(task.execution_id, "")
        return self.book.granted(task, workflow)

    async def _promote_loop(self) -> None:
        """Move tasks whose backoff ended to the ready queues; re-offer tasks whose stickiness ran out.

        Sleeps on the shared wake-up loop (`runtime.wakeup`): until the next due time, or less
        when the book has something new that comes due sooner (a poke is never lost).
        """

        async def promote() -> float:
            now = self.clock.now_ms()
            self._hand_out(self.book.promote(now))
            self.book.take_wakeup()
            next_due = self.book.next_due_ms() or now + 1000
            return max(0.001, min((next_due - now) / 1000, self.sticky_window_ms / 1000 or 0.05, 1.0))

        await self._wakeup.run(promote)

    async def _sweep_loop(self) -> None:
        """Time out leases whose worker went silent and attempts that ran past their timeout; now and
        then, forget the recorded starts no rate window sees any more."""
        pruned_at = self.clock.now_ms()
        while True:
            await self.clock.sleep(self.sweep_interval_s)
            await self.sweep()
            if self.clock.now_ms() - pruned_at >= self.prune_interval_ms:
                pruned_at = self.clock.now_ms()
                try:
                    await self.db.run(self.db.store.prune_task_starts, pruned_at)
                except StoreUnavailable as error:
                    self._store_outage.failed(error)

    async def sweep(self) -> None:
        """One round of the sweep: tell the engine of each expired lease, with its last progress."""
        for expiry in self.book.expired(self.clock.now_ms()):
            command = cmd.TaskTimedOut(expiry.token, expiry.kind, progress=expiry.progress)
            try:
                decision = await self.engine.handle(expiry.execution_id, command)
            except ExecutionNotFound:
                decision = None
            except StoreUnavailable as error:
                self._store_outage.failed(error)
                return  # the other expired leases wait for the next sweep, and the store
            except Exception:
                log.exception("could not time out task %s", expiry.token)
                continue
            self._store_outage.succeeded()
            if decision is None or decision.reply != Reply.ACCEPTED:
                self.book.forget_lease(expiry.token)
                try:
                    await self.db.run(self.db.store.delete_task, expiry.token)
                except StoreUnavailable as error:  # the row is dropped when it times out after a restart
                    self._store_outage.failed(error)
