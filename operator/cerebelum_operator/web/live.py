"""Change notices for open pages: which executions changed, told to browsers as server-sent events.

The engine calls :meth:`ChangeFeed.changed` after every committed decision and every new
heartbeat progress; that must not block, so it only bumps counters and wakes waiters. A page
then asks again for what it shows (a fragment of HTML), at most once per ``interval_s``: a burst
of a thousand decisions costs a viewer one refresh, not a thousand. The number of open streams is
bounded; one past the bound is refused (503) rather than queued.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from ..runtime import Clock

__all__ = ["ChangeFeed", "FeedFull"]

_RECENT = 4096  # executions whose last change is remembered, newest kept


class FeedFull(Exception):
    """Too many pages follow changes already."""


@dataclass(slots=True)
class _Version:
    value: int = 0


class ChangeFeed:
    def __init__(self, *, clock: Clock, max_streams: int = 256) -> None:
        self.clock = clock
        self.max_streams = max_streams
        self.streams = 0
        self._version = _Version()
        self._changed_at: OrderedDict[str, int] = OrderedDict()
        self._wake = asyncio.Event()

    @property
    def version(self) -> int:
        return self._version.value

    def changed(self, execution_id: str) -> None:
        """Note a change of ``execution_id``; called on the event loop, never blocks."""
        self._version.value += 1
        self._changed_at[execution_id] = self._version.value
        self._changed_at.move_to_end(execution_id)
        while len(self._changed_at) > _RECENT:
            self._changed_at.popitem(last=False)
        self._wake.set()
        self._wake = asyncio.Event()

    def version_of(self, execution_id: str) -> int:
        """The feed version at this execution's last change (0: none remembered)."""
        return self._changed_at.get(execution_id, 0)

    async def wait_past(self, version: int, *, timeout_s: float) -> int:
        """Wait until the feed moves past ``version`` (or the timeout); the version then."""
        if self._version.value > version:
            return self._version.value
        woken = asyncio.ensure_future(self._wake.wait())
        timer = self.clock.timer(timeout_s)
        try:
            await asyncio.wait((woken, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            timer.cancel()
        return self._version.value

    def open_stream(self) -> None:
        if self.streams >= self.max_streams:
            raise FeedFull(f"{self.streams} pages follow changes already (at most {self.max_streams})")
        self.streams += 1

    def close_stream(self) -> None:
        self.streams -= 1
