"""A test worker for steps that name a function and pass it args: one `resize` serves two steps.

fetch   -> returns the image's url
resize  -> registered once; run as the workflow steps `small` and `large`, each with its own
           `width` argument, it returns which step and function it ran as, its arguments and
           its idempotency key
"""

from __future__ import annotations

import os
import sys
from typing import Any

from cerebelum import StepContext, Worker

worker = Worker(task_queue=os.environ.get("TASK_QUEUE", "test"), max_concurrency=20)


@worker.step()
async def fetch(ctx: StepContext) -> dict[str, Any]:
    return {"url": f"s3://images/{ctx.execution_id}.png"}


@worker.step()
async def resize(ctx: StepContext, width: int, url: str) -> dict[str, Any]:
    return {"step": ctx.step, "function": ctx.function, "width": width, "url": url, "key": ctx.idempotency_key}


if __name__ == "__main__":
    print(f"worker {os.getpid()} ready", file=sys.stderr, flush=True)
    worker.run()
