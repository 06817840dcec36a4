"""A test worker for forEach steps: one function labels each parcel of a list made at run time.

parcels -> the list: ``input.count`` parcel names
label   -> run once per parcel (a forEach step's item, passed as the ``parcel`` argument);
           fails for good for the positions in ``input.failing``; writes each run to the ledger;
           with $GATE set, the positions from $GATE_FROM on wait until the file $GATE exists
           (so a test can stop the engine while items are certainly still running)
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
worker = Worker(task_queue=os.environ.get("TASK_QUEUE", "test"), max_concurrency=50)


@worker.step()
async def parcels(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    return {"names": [f"p{i}" for i in range(int(input["count"]))]}


def record(position: int, attempt: int) -> None:
    with open(LEDGER, "a") as ledger:
        ledger.write(json.dumps({"position": position, "attempt": attempt, "at": time.time()}) + "\n")


@worker.step()
async def label(ctx: StepContext, parcel: str, position: int, broken: bool) -> dict[str, Any]:
    record(position, ctx.attempt)
    gate = os.environ.get("GATE")
    if gate and position >= int(os.environ.get("GATE_FROM", "0")):
        while not await asyncio.to_thread(os.path.exists, gate):
            await asyncio.sleep(0.05)
    if broken:
        raise NonRetryableError(f"parcel {parcel} has no address", type="NoAddress")
    return {"label": parcel.upper(), "key": ctx.idempotency_key}


if __name__ == "__main__":
    print(f"worker {os.getpid()} ready", file=sys.stderr, flush=True)
    worker.run()
