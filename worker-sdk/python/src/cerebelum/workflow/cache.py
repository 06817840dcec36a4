"""The sticky cache: live workflow instances by execution id, least recently used evicted first."""

from __future__ import annotations

from collections import OrderedDict

from cerebelum.workflow.replay import Replayer

__all__ = ["WorkflowCache"]


class WorkflowCache:
    """Holds up to ``capacity`` replayers (0: none); an evicted one has its code's coroutines closed."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("max_cached_workflows must not be negative")
        self.capacity = capacity
        self._entries: OrderedDict[str, Replayer] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, execution_id: object) -> bool:
        return execution_id in self._entries

    def take(self, execution_id: str) -> Replayer | None:
        """Remove and return the execution's replayer: a task works on it alone."""
        return self._entries.pop(execution_id, None)

    def put(self, execution_id: str, replayer: Replayer) -> None:
        """Keep ``replayer`` as the most recently used; evict the least recently used beyond the capacity."""
        old = self._entries.pop(execution_id, None)
        if old is not None and old is not replayer:
            old.close()
        if self.capacity == 0:
            replayer.close()
            return
        self._entries[execution_id] = replayer
        while len(self._entries) > self.capacity:
            _, evicted = self._entries.popitem(last=False)
            evicted.close()

    def put_back(self, execution_id: str, replayer: Replayer) -> None:
        """Keep ``replayer`` unless a task put a newer instance of the execution meanwhile (then close it)."""
        if execution_id in self._entries:
            replayer.close()
            return
        self.put(execution_id, replayer)

    def clear(self) -> None:
        while self._entries:
            _, replayer = self._entries.popitem()
            replayer.close()
