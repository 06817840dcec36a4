"""Work done again and again on the injected clock: what an engine of a split re-reads of the store.

Engines that split the shards share settings another engine may change (a task queue's pause, a
workflow's pause). The engine called tells the others at once; this loop is what makes one it could
not reach catch up all the same.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from .clock import Clock

__all__ = ["every"]

log = logging.getLogger(__name__)


async def every(clock: Clock, seconds: float, work: Callable[[], Awaitable[object]], *, what: str) -> None:
    """`work()` every `seconds` until cancelled; a failure (the store away a moment) is logged and the
    next round tries again."""
    while True:
        await clock.sleep(seconds)
        try:
            await work()
        except Exception as error:
            log.warning("%s failed: %s", what, error)
