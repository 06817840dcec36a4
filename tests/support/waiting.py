"""Wait for a condition, never for a length of time: the one `eventually` (async) and `wait_until` (sync).

A test that sleeps "long enough" for something to happen fails on a busy machine and wastes time
on an idle one. These poll the condition and give up only after a generous bound, naming what
did not happen.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

from cerebelum_operator.runtime import FakeClock

__all__ = ["DEFAULT_WITHIN", "advance_until", "eventually", "wait_until"]

# Generous on purpose: the bound is only reached when the test fails, so it costs nothing otherwise.
DEFAULT_WITHIN = 30.0


async def eventually(
    check: Callable[[], object | Awaitable[object]],
    *,
    within: float = DEFAULT_WITHIN,
    what: str = "the condition",
    interval: float = 0.005,
) -> None:
    """Return once `check()` (a coroutine function too) is true; fail naming `what` if it is still
    false after `within` seconds."""
    deadline = time.monotonic() + within
    while not await _settled(check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {within:g} s")
        await asyncio.sleep(interval)


async def _settled(value: object) -> object:
    return await value if inspect.isawaitable(value) else value


def wait_until(
    check: Callable[[], object], *, within: float = DEFAULT_WITHIN, what: str = "the condition", interval: float = 0.05
) -> None:
    """The same for tests without an event loop (processes, clusters): poll every `interval` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {within:g} s")
        time.sleep(interval)


async def advance_until(
    clock: FakeClock, check: Callable[[], object], *, step: float, what: str, within: float = DEFAULT_WITHIN
) -> None:
    """Move the fake clock `step` seconds at a time until `check()` is true (bounded in real time).

    Between steps the loop waits for a call on another thread to come back (`_idle_once`): a loop
    that only yields (``sleep(0)``) keeps the GIL, and the store's thread then waits the
    interpreter's switch interval (5 ms) for each statement it runs; a wake of 1,000 timers took
    minutes of real time that way, while the fake clock ran hours ahead of it.
    """
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {within:g} s (fake clock at {clock.now_s():.3f})")
        await clock.advance(step)
        await _idle_once()


async def _idle_once() -> None:
    """Wait, idle in the event loop's poll (so without the GIL), until a no-op on the default executor's
    thread has run: the other threads get their turn at the GIL meanwhile."""
    await asyncio.get_running_loop().run_in_executor(None, _nothing)


def _nothing() -> None:
    return None
