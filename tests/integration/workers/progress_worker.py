"""A worker whose step `batch` reports progress, fails once it is told to, and resumes from it when retried.

Attempt 1 heartbeats ``{"done": 3}`` and fails when the file named by GO appears; attempt 2
returns the progress it received (``ctx.last_progress``) as its output.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from cerebelum import StepContext, Worker

GO = Path(os.environ["GO"])
worker = Worker(task_queue="progress")


@worker.step()
async def batch(ctx: StepContext) -> dict[str, object]:
    if ctx.attempt > 1:
        return {"attempt": ctx.attempt, "resumed_from": ctx.last_progress}
    ctx.heartbeat({"done": 3})
    while not await asyncio.to_thread(GO.exists):
        await asyncio.sleep(0.05)
    raise RuntimeError("the batch broke after 3 items")


if __name__ == "__main__":
    worker.run()
