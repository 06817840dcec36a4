"""Ready tasks in the order they should start: by priority, then in turns between flow keys.

A pure index (no clock, no I/O) of one (task queue, step, namespace)'s ready tasks. Higher
priority first; within a priority, keys take turns, so a key with 1,000 queued tasks does not
starve a key with one; within a key, arrival order. Tasks without a key form one key of their own,
so a queue that uses neither priorities nor keys stays first in, first out.

*How turns are kept (start-time fair queueing):* each key has a virtual time, the number of turns
it has had; serving a key advances its time by one, and a key that (re)appears starts at the
virtual time of the last key served, so it is neither owed the turns it missed while idle nor
left behind the busy keys. The next task is the head of the key with the highest head priority,
then the lowest virtual time, then the oldest head. Keys sit in a heap (stale entries skipped,
lazily), tasks of a key in a heap of their own: adding or taking a task costs O(log n).

A key the caller refuses (`take`'s ``admit``: its rate limit is used up) is parked: set aside
until `unpark`, so blocked keys cost nothing per take.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

__all__ = ["FairQueue", "Fairly"]


class Fairly(Protocol):
    """What the queue reads of a task."""

    @property
    def token(self) -> str: ...

    @property
    def priority(self) -> int: ...

    @property
    def flow_key(self) -> str | None: ...


T = TypeVar("T", bound=Fairly)

# A key's tasks of one priority take turns with the other keys of that priority only.
_Lane = tuple[int, str | None]  # (priority, flow key)
# Heap entries: (-priority, virtual time, arrival order, entry number, lane); the entry number
# tells the lane's current entry from stale ones.
_Entry = tuple[int, int, int, int, _Lane]


@dataclass(slots=True)
class _Key(Generic[T]):
    vtime: int
    tasks: list[tuple[int, str]] = field(default_factory=list)  # (order, token)
    live: dict[str, T] = field(default_factory=dict)
    entry: _Entry | None = None  # in the queue's heap; None: parked or empty
    parked: bool = False

    def head(self) -> tuple[int, str] | None:
        while self.tasks and self.tasks[0][1] not in self.live:
            heapq.heappop(self.tasks)
        return self.tasks[0] if self.tasks else None


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        self._keys: dict[_Lane, _Key[T]] = {}
        self._key_of: dict[str, _Lane] = {}  # token -> its lane
        self._lanes: dict[str | None, set[int]] = {}  # flow key -> the priorities it has tasks of
        self._order: dict[str, int] = {}
        self._heap: list[_Entry] = []
        self._vclock: dict[int, int] = {}  # per priority: the virtual time of the last key served
        self._entries = itertools.count()

    def __len__(self) -> int:
        return len(self._key_of)

    def __contains__(self, token: str) -> bool:
        return token in self._key_of

    def __iter__(self) -> Iterator[T]:
        for key in self._keys.values():
            yield from key.live.values()

    def add(self, task: T, order: int) -> None:
        """Queue ``task``; ``order`` is its arrival (a task put back keeps its first one)."""
        if task.token in self._key_of:
            self.remove(task.token)
        lane = (task.priority, task.flow_key)
        key = self._keys.get(lane)
        if key is None:
            key = self._keys[lane] = _Key(vtime=self._vclock.get(task.priority, 0))
            self._lanes.setdefault(task.flow_key, set()).add(task.priority)
        key.live[task.token] = task
        heapq.heappush(key.tasks, (order, task.token))
        self._key_of[task.token] = lane
        self._order[task.token] = order
        if not key.parked:
            self._reindex(lane, key)

    def remove(self, token: str) -> T | None:
        if token not in self._key_of:
            return None
        lane = self._key_of.pop(token)
        self._order.pop(token, None)
        key = self._keys[lane]
        task = key.live.pop(token)
        if not key.live:
            del self._keys[lane]  # its heap entry turns stale
            priorities = self._lanes[lane[1]]
            priorities.discard(lane[0])
            if not priorities:
                del self._lanes[lane[1]]
        elif not key.parked:
            self._reindex(lane, key)
        return task

    def peek(self, admit: Callable[[T], bool]) -> tuple[tuple[int, int, int], T] | None:
        """The next task ``admit`` lets start, with its rank (lower first); refused keys are parked."""
        while self._heap:
            entry = self._heap[0]
            key = self._keys.get(entry[4])
            if key is None or key.entry is not entry:
                heapq.heappop(self._heap)
                continue
            head = key.head()
            assert head is not None
            task = key.live[head[1]]
            if not admit(task):
                heapq.heappop(self._heap)
                key.entry, key.parked = None, True
                continue
            return (entry[0], entry[1], entry[2]), task
        return None

    def take(self, admit: Callable[[T], bool] = lambda _: True) -> T | None:
        """Remove and return the next task ``admit`` lets start, giving its key's turn away."""
        found = self.peek(admit)
        if found is None:
            return None
        return self.pop(found[1])

    def pop(self, task: T) -> T:
        """Take ``task``, the one `peek` returned: its key's turn is spent."""
        key = self._keys[(task.priority, task.flow_key)]
        vclock = self._vclock[task.priority] = max(self._vclock.get(task.priority, 0), key.vtime)
        key.vtime = vclock + 1
        removed = self.remove(task.token)
        assert removed is task
        return task

    def parked(self) -> list[str | None]:
        """The flow keys set aside (refused by ``admit``) with tasks still queued."""
        return list(dict.fromkeys(lane[1] for lane, key in self._keys.items() if key.parked))

    def unpark(self, flow_key: str | None) -> None:
        """A refused key may be asked again (its limit has room again), at every priority."""
        for priority in self._lanes.get(flow_key, ()):
            lane = (priority, flow_key)
            key = self._keys[lane]
            if key.parked:
                key.parked = False
                key.vtime = max(key.vtime, self._vclock.get(priority, 0))
                self._reindex(lane, key)

    def _reindex(self, lane: _Lane, key: _Key[T]) -> None:
        head = key.head()
        if head is None:
            return
        entry = (-lane[0], key.vtime, head[0], next(self._entries), lane)
        if key.entry is not None and key.entry[:3] == entry[:3]:
            return
        key.entry = entry
        heapq.heappush(self._heap, entry)
        if len(self._heap) > 64 + 4 * len(self._keys):  # mostly stale: rebuild from the live entries
            self._heap = [k.entry for k in self._keys.values() if k.entry is not None]
            heapq.heapify(self._heap)
