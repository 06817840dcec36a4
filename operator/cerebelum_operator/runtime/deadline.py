"""`asyncio.wait_for` with the timeout measured on the injected `Clock`, so a test can expire it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from .clock import Clock

__all__ = ["wait_for"]

T = TypeVar("T")


async def wait_for(awaitable: Awaitable[T], *, within: float, clock: Clock) -> T:
    """The awaitable's result, or `TimeoutError` (the awaitable cancelled) once `within` seconds passed on `clock`."""
    work = asyncio.ensure_future(awaitable)
    expiry = clock.timer(max(0.0, within))
    try:
        await asyncio.wait((work, expiry), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        work.cancel()
        expiry.cancel()
        raise
    if work.done():
        expiry.cancel()
        return work.result()
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)
    raise TimeoutError(f"no answer within {within:g} s")
