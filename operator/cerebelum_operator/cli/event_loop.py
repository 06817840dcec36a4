"""The event loop a serving command runs on: uvloop where it is installed, asyncio's own otherwise.

A step's path through the engine is mostly callbacks, futures and socket wake-ups on one loop; uvloop
runs those in C (libuv), which leaves more of the one core the engine's Python threads share (the GIL)
to the engine itself (bench/analysis.md). grpc.aio and kopf run on any asyncio loop.
``CEREBELUM_EVENT_LOOP=asyncio`` keeps the standard loop, to rule the loop out when chasing a problem.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, Final, TypeVar

__all__ = ["EVENT_LOOP_ENV", "EventLoopChoiceError", "loop_name", "run"]

EVENT_LOOP_ENV: Final = "CEREBELUM_EVENT_LOOP"
_CHOICES: Final = ("uvloop", "asyncio")

T = TypeVar("T")


class EventLoopChoiceError(ValueError):
    """CEREBELUM_EVENT_LOOP names a loop this build cannot run on."""


def loop_name(environ: dict[str, str] | None = None) -> str:
    """The loop to run on: the environment's choice, or uvloop when it can be imported."""
    chosen = (os.environ if environ is None else environ).get(EVENT_LOOP_ENV, "").strip()
    if chosen and chosen not in _CHOICES:
        shown = chosen if len(chosen) <= 64 else f"{chosen[:64]}... ({len(chosen)} characters)"
        raise EventLoopChoiceError(f"{EVENT_LOOP_ENV}={shown!r}: choose one of {', '.join(_CHOICES)}")
    if chosen == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401  (only whether it imports: not on Windows)
    except ImportError:
        if chosen == "uvloop":
            raise EventLoopChoiceError(f"{EVENT_LOOP_ENV}=uvloop: uvloop is not installed here") from None
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T], *, environ: dict[str, str] | None = None) -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    try:
        name = loop_name(environ)
    except EventLoopChoiceError:
        main.close()  # never to run: closed, so that nothing warns of a coroutine never awaited
        raise
    if name == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)
