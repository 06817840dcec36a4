"""A test worker for the composition samples (issue 17): Temporal's hello samples, written plainly.

compose_greeting(greeting, name) -> "Hello, World!"  (the child of hello_child_workflow)
slow(hold_s)                     -> heartbeats for that long, then returns; each run is in the ledger
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from cerebelum import StepContext, Worker

worker = Worker(task_queue=os.environ.get("TASK_QUEUE", "test"), max_concurrency=20)


def record(ctx: StepContext, event: str) -> None:
    line = json.dumps({"execution": ctx.execution_id, "step": ctx.step, "event": event, "at": time.time()})
    with open(os.environ["LEDGER"], "a") as ledger:
        ledger.write(line + "\n")
        ledger.flush()
        os.fsync(ledger.fileno())


@worker.step()
async def compose_greeting(ctx: StepContext, greeting: str, name: str) -> dict[str, Any]:
    record(ctx, "run")
    return {"text": f"{greeting}, {name}!"}


@worker.step()
async def slow(ctx: StepContext, hold_s: float) -> dict[str, Any]:
    record(ctx, "start")
    deadline = time.monotonic() + hold_s
    while time.monotonic() < deadline:
        ctx.heartbeat({"left": deadline - time.monotonic()})
        await asyncio.sleep(0.1)
    record(ctx, "run")
    return {"slow": "done"}


if __name__ == "__main__":
    print(f"worker {os.getpid()} ready", file=sys.stderr, flush=True)
    worker.run()
