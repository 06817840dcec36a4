"""Runs the synchronous store on one dedicated thread, so the event loop never blocks on I/O."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from ..store import EventStore

__all__ = ["Database"]

P = ParamSpec("P")
T = TypeVar("T")


class Database:
    """The store behind an async facade; one thread keeps SQLite's single writer happy."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cerebelum-db")

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.store.close()
