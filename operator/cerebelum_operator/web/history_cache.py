"""The histories open pages read, kept in memory and extended by their new events only.

An execution page draws its timeline from the whole history and refreshes about once a second
while the execution moves: reading 10,000 events from the store at each refresh would cost the
store more than the run itself. A history is append-only, so a cached one is brought up to date
by reading the events after its last. Bounded by executions and by events (least recently used
first out); a history longer than the whole bound is read each time and not kept.
"""

from __future__ import annotations

from collections import OrderedDict

from ..engine.events import RecordedEvent
from ..runtime import EngineService

__all__ = ["HistoryCache"]


class HistoryCache:
    def __init__(self, engine: EngineService, *, max_executions: int = 64, max_events: int = 400_000) -> None:
        self.engine = engine
        self.max_executions = max_executions
        self.max_events = max_events
        self._histories: OrderedDict[str, list[RecordedEvent]] = OrderedDict()
        self._events = 0

    async def history(self, execution_id: str, *, last_seq: int) -> list[RecordedEvent]:
        """The execution's events up to at least ``last_seq`` (its row's), oldest first."""
        kept = self._histories.pop(execution_id, None)
        if kept is not None:
            self._events -= len(kept)
            if kept and kept[-1].seq > last_seq:  # not this history (removed and started again)
                kept = None
        events = list(kept or ())
        if not events or events[-1].seq < last_seq:
            after = events[-1].seq if events else 0
            events.extend(await self.engine.load_history(execution_id, after_seq=after))
        if len(events) <= self.max_events:
            self._histories[execution_id] = events
            self._events += len(events)
            while self._events > self.max_events or len(self._histories) > self.max_executions:
                _, dropped = self._histories.popitem(last=False)
                self._events -= len(dropped)
        return events
