"""The history cache: a kept history is extended by its new events only, and the cache stays bounded."""

from __future__ import annotations

from typing import Any

from cerebelum_operator.engine import events as ev
from cerebelum_operator.engine.events import RecordedEvent
from cerebelum_operator.web.history_cache import HistoryCache


class Store:
    """Stands in for the engine service's history reads, counting what each read returned."""

    def __init__(self) -> None:
        self.histories: dict[str, list[RecordedEvent]] = {}
        self.reads: list[tuple[str, int, int]] = []

    def add(self, execution_id: str, count: int) -> None:
        history = self.histories.setdefault(execution_id, [])
        for _ in range(count):
            seq = len(history) + 1
            history.append(RecordedEvent(seq, seq, ev.SignalReceived(name="n", data=None, sender="s")))

    async def load_history(self, execution_id: str, *, after_seq: int = 0, limit: Any = None) -> list[RecordedEvent]:
        found = [e for e in self.histories.get(execution_id, []) if e.seq > after_seq]
        self.reads.append((execution_id, after_seq, len(found)))
        return found


async def test_a_kept_history_reads_only_the_events_after_its_last() -> None:
    store = Store()
    cache = HistoryCache(store)  # type: ignore[arg-type]
    store.add("a", 1000)
    assert len(await cache.history("a", last_seq=1000)) == 1000
    store.add("a", 5)
    assert [e.seq for e in await cache.history("a", last_seq=1005)][-2:] == [1004, 1005]
    assert await cache.history("a", last_seq=1005) is not None
    assert store.reads == [("a", 0, 1000), ("a", 1000, 5)]


async def test_a_history_that_went_back_is_read_again_whole() -> None:
    store = Store()
    cache = HistoryCache(store)  # type: ignore[arg-type]
    store.add("a", 10)
    await cache.history("a", last_seq=10)
    store.histories["a"] = []
    store.add("a", 3)  # removed by retention and started again under the same id
    assert [e.seq for e in await cache.history("a", last_seq=3)] == [1, 2, 3]


async def test_the_cache_drops_the_least_recently_read_beyond_its_bounds() -> None:
    store = Store()
    cache = HistoryCache(store, max_executions=2, max_events=100)  # type: ignore[arg-type]
    for name in ("a", "b", "c"):
        store.add(name, 10)
        await cache.history(name, last_seq=10)
    store.reads.clear()
    await cache.history("c", last_seq=10)
    await cache.history("a", last_seq=10)
    assert store.reads == [("a", 0, 10)]  # c was kept, a was dropped
    store.add("big", 150)
    assert len(await cache.history("big", last_seq=150)) == 150  # longer than the bound: read, not kept
    await cache.history("big", last_seq=150)
    assert store.reads[-1] == ("big", 0, 150)
