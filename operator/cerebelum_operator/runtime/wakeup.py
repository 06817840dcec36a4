"""The wake-up loop: do the work that is due, then sleep on the clock until the next due time or a poke.

Timers, the dispatcher's promotions and the status writer each keep "what is due when" and are
told of new work as it arrives. They share this loop so that a poke is never lost (a poke while
the work runs makes the next wait return at once) and so that their sleeps run on the injected
`Clock`: a test moves a `FakeClock` instead of waiting for real time to pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn

from .clock import Clock

__all__ = ["Wakeup"]


class Wakeup:
    """Sleeps on `clock` until a due time or until `poke` is called, whichever comes first."""

    def __init__(self, *, clock: Clock) -> None:
        self.clock = clock
        self._poked = asyncio.Event()

    def poke(self) -> None:
        """New work may be due: end the current (or the next) wait now."""
        self._poked.set()

    async def wait(self, seconds: float | None) -> None:
        """Return after `seconds` on the clock (never, if None) or once poked; a poke is used up."""
        try:
            if self._poked.is_set():
                await asyncio.sleep(0)  # a busy loop still lets the rest of the process run
                return
            if seconds is None:
                await self._poked.wait()
                return
            poked = asyncio.ensure_future(self._poked.wait())
            slept = self.clock.timer(max(0.0, seconds))
            try:
                await asyncio.wait((poked, slept), return_when=asyncio.FIRST_COMPLETED)
            finally:
                poked.cancel()
                slept.cancel()
        finally:
            self._poked.clear()

    async def run(self, step: Callable[[], Awaitable[float | None]]) -> NoReturn:
        """Call `step` forever; it does what is due and says how long until more is (None: until poked)."""
        while True:
            await self.wait(await step())
