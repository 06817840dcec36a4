"""Runs the synchronous store on one dedicated thread, so the event loop never waits on a disk or a network.

Appends are group-committed: every append queued while the thread was busy goes into the
next transaction together. Each caller still learns its own outcome, and nobody is told
"committed" before the transaction that holds its events has committed.

With `inline_commits` (a SQLite file that does not sync each commit: the commit is a write to
the page cache), an append that is the only one queued in its turn of the event loop, with the
store idle, commits at once on the loop: the two thread hand-offs it saves were a third of a
step's latency at low load. Under load several appends meet in a turn (or the store thread is
busy) and they go to the store thread's group commit as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from ..store import AppendRequest, EventStore

__all__ = ["Database"]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(slots=True)
class _Queued:
    request: AppendRequest
    future: asyncio.Future[None]


class Database:
    """The store behind an async facade; one thread keeps SQLite's single writer happy."""

    def __init__(self, store: EventStore, *, max_batch: int = 512, inline_commits: bool = False) -> None:
        self.store = store
        self.max_batch = max_batch
        self.inline_commits = inline_commits
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cerebelum-db")
        self._lock = threading.Lock()
        self._pending: list[_Queued] = []
        self._drain_submitted = False
        # Held by whichever thread uses the store: its thread, or the loop for an inline commit.
        self._store_busy = threading.Lock()
        self.batches = 0  # transactions committed by `append`, for the metrics and benchmarks
        self.appends = 0
        self.inline = 0  # of them, committed at once on the caller's thread

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self._exclusive, fn, *args, **kwargs))

    def _exclusive(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._store_busy:
            return fn(*args, **kwargs)

    def append(self, request: AppendRequest) -> asyncio.Future[None]:
        """Queue an append; the future resolves once it committed (or fails with its own error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._pending.append(_Queued(request, future))
            if self._drain_submitted:
                return future
            self._drain_submitted = True
        if self.inline_commits:
            loop.call_soon(self._inline_or_drain, loop)  # once this turn's other decisions have queued theirs
        else:
            self._executor.submit(self._drain, loop)
        return future

    def _inline_or_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """One append queued in a turn of the loop, and the store idle: commit it here, at once. Several,
        or the store busy with a read: the store's thread commits them as a group."""
        with self._lock:
            alone = len(self._pending) == 1
        if not alone or not self._store_busy.acquire(blocking=False):
            self._executor.submit(self._drain, loop)
            return
        try:
            with self._lock:
                batch, self._pending = self._pending, []
            try:
                outcomes: list[Exception | None] = self.store.append_batch([queued.request for queued in batch])
            except Exception as error:  # the store itself failed
                outcomes = [error] * len(batch)
        finally:
            self._store_busy.release()
        self.batches += 1
        self.appends += len(batch)
        self.inline += len(batch)
        _settle(batch, outcomes)
        with self._lock:  # nothing can have come meanwhile (this thread was busy), but a read may wait
            self._drain_submitted = False

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the store's thread: commit what is queued as one batch, then make way for reads."""
        with self._lock:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        try:
            with self._store_busy:
                outcomes: list[Exception | None] = self.store.append_batch([queued.request for queued in batch])
        except Exception as error:  # the store itself failed (connection lost): everyone hears it
            outcomes = [error] * len(batch)
        self.batches += 1
        self.appends += len(batch)
        with contextlib.suppress(RuntimeError):  # the loop closed under us: nobody is waiting
            loop.call_soon_threadsafe(_settle, batch, outcomes)
        with self._lock:
            if not self._pending:
                self._drain_submitted = False
                return
        # More came meanwhile: queue behind the reads that are waiting, not ahead of them.
        with contextlib.suppress(RuntimeError):  # shutting down
            self._executor.submit(self._drain, loop)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.store.close()


def _settle(batch: list[_Queued], outcomes: list[Exception | None]) -> None:
    for queued, outcome in zip(batch, outcomes, strict=True):
        if queued.future.done():  # the caller was cancelled; the append committed or failed anyway
            continue
        if outcome is None:
            queued.future.set_result(None)
        else:
            queued.future.set_exception(outcome)
