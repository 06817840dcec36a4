"""Inline commits: an append alone in its turn of the loop, with the store idle, commits on the loop;
several in one turn, or one that finds the store busy (a read running), go to the store's thread
as one group commit, as before."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from cerebelum_operator.runtime import Database
from cerebelum_operator.server.engine_server import commits_without_syncing


class RecordingStore:
    """Stands in for a store: records the thread of each append, and can hold a read until released."""

    def __init__(self) -> None:
        self.append_threads: list[str] = []
        self.batch_sizes: list[int] = []
        self.reading = threading.Event()
        self.release = threading.Event()
        self.fail_with: Exception | None = None

    def append_batch(self, requests: Sequence[Any]) -> list[Exception | None]:
        self.append_threads += [threading.current_thread().name] * len(requests)
        self.batch_sizes.append(len(requests))
        return [self.fail_with] * len(requests)

    def slow_read(self) -> str:
        self.reading.set()
        self.release.wait(timeout=30)
        return "read"

    def close(self) -> None:
        pass


REQUEST: Any = object()  # the store above never looks inside


def database(store: RecordingStore, *, inline: bool) -> Database:
    return Database(store, inline_commits=inline)  # type: ignore[arg-type]  # a fake store


async def test_an_append_alone_in_its_turn_with_the_store_idle_commits_on_the_loop() -> None:
    store = RecordingStore()
    db = database(store, inline=True)
    try:
        await db.append(REQUEST)
        await db.append(REQUEST)
        assert store.append_threads == [threading.current_thread().name] * 2
        assert (db.inline, db.appends, db.batches) == (2, 2, 2)
    finally:
        db.close()


async def test_appends_queued_in_one_turn_go_together_to_the_store_thread() -> None:
    store = RecordingStore()
    db = database(store, inline=True)
    try:
        await asyncio.gather(*(db.append(REQUEST) for _ in range(3)))
        assert store.batch_sizes == [3]
        assert store.append_threads[0].startswith("cerebelum-db")
        assert db.inline == 0
    finally:
        db.close()


async def test_an_append_while_the_store_is_busy_waits_for_the_store_thread() -> None:
    store = RecordingStore()
    db = database(store, inline=True)
    try:
        read = asyncio.ensure_future(db.run(store.slow_read))
        await asyncio.get_running_loop().run_in_executor(None, store.reading.wait, 30)
        committed = db.append(REQUEST)
        # Callbacks run in the order they were scheduled: once this one has, so has the append's
        # `_inline_or_drain`, which found the store held by the read.
        after_the_append: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(after_the_append.set_result, None)
        await after_the_append
        assert not committed.done(), "queued behind the read, not run beside it"
        store.release.set()
        assert await read == "read"
        await committed
        assert store.append_threads[0].startswith("cerebelum-db")
        assert db.inline == 0
    finally:
        store.release.set()
        db.close()


async def test_without_inline_commits_every_append_goes_to_the_store_thread() -> None:
    store = RecordingStore()
    db = database(store, inline=False)
    try:
        await db.append(REQUEST)
        assert store.append_threads[0].startswith("cerebelum-db")
    finally:
        db.close()


async def test_an_inline_append_that_fails_gets_its_own_error() -> None:
    store = RecordingStore()
    store.fail_with = ValueError("conflict")
    db = database(store, inline=True)
    try:
        with pytest.raises(ValueError, match="conflict"):
            await db.append(REQUEST)
    finally:
        db.close()


@pytest.mark.parametrize(
    ("url", "inline"),
    [
        ("sqlite:///x.db", True),
        ("sqlite:///x.db?synchronous=normal", True),
        ("sqlite:///x.db?synchronous=FULL", False),
        ("sqlite:///x.db?synchronous=EXTRA", False),
        ("postgresql://db/x", False),
        ("postgresql+psycopg://db/x", False),
    ],
)
def test_only_a_sqlite_store_that_does_not_sync_each_commit_commits_on_the_loop(url: str, inline: bool) -> None:
    assert commits_without_syncing(url) is inline
