"""A test worker for sagas: every run of a step is written to a ledger file outside the engine.

book, pay   -> succeed; pay fails for good when input.fail_pay
unbook      -> the compensation of book: records "start", heartbeats for input.hold_s, then "run"
notify      -> the finally step
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from cerebelum import NonRetryableError, StepContext, Worker

LEDGER = os.environ["LEDGER"]
worker = Worker(task_queue=os.environ.get("TASK_QUEUE", "test"), max_concurrency=20)


def record(ctx: StepContext, event: str, **extra: Any) -> None:
    line = json.dumps({"execution": ctx.execution_id, "step": ctx.step, "event": event, "at": time.time(), **extra})
    with open(LEDGER, "a") as ledger:
        ledger.write(line + "\n")
        ledger.flush()
        os.fsync(ledger.fileno())


@worker.step()
async def book(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    record(ctx, "run")
    return {"booking": f"b-{ctx.execution_id}"}


@worker.step()
async def pay(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    record(ctx, "run")
    if input.get("fail_pay"):
        raise NonRetryableError("card declined", type="Declined")
    return {"paid": True}


@worker.step()
async def unbook(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    record(ctx, "start", attempt=ctx.attempt)
    deadline = time.monotonic() + float(input.get("hold_s", 0))
    while time.monotonic() < deadline:
        ctx.heartbeat({"left": deadline - time.monotonic()})
        await asyncio.sleep(0.1)
    record(ctx, "run", booking=ctx.result("book")["booking"])
    return {"unbooked": True}


@worker.step()
async def notify(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    record(ctx, "run")
    return {"notified": True}


if __name__ == "__main__":
    print(f"worker {os.getpid()} ready", file=sys.stderr, flush=True)
    worker.run()
