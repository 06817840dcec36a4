"""A test worker whose step `explode` raises from a nested call, and `slowly` takes 2 s.

`explode`'s message and stack trace hold text that looks like Rich markup and an escape sequence,
so a test can check that `cerebelum describe` prints them as written and inert.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from cerebelum import StepContext, Worker

worker = Worker(task_queue=os.environ.get("TASK_QUEUE", "test"), max_concurrency=4)


def charge_the_card(card: str) -> None:
    raise ValueError(f"card {card} declined: see [/var/log/cards] [red]now[/red] \x1b[2J")


@worker.step()
async def explode(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    charge_the_card("4242")
    return {}


@worker.step()
async def slowly(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(2)
    return {"slowly": "done"}


if __name__ == "__main__":
    print(f"worker {os.getpid()} ready", file=sys.stderr, flush=True)
    worker.run()
