"""The Python half of the mixed-language tests: the same ledger as the TypeScript worker.

py_start and py_add are the Python steps of the mixed workflow; nap, ask and after do what the
TypeScript worker's steps of the same names do, so the two languages can be compared.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from cerebelum import StepContext, Worker

LEDGER = os.environ["LEDGER"]
worker = Worker(task_queue=os.environ.get("TASK_QUEUE", "test"), max_concurrency=20)


def record(ctx: StepContext, event: str) -> None:
    line = json.dumps(
        {
            "execution": ctx.execution_id,
            "step": ctx.step,
            "attempt": ctx.attempt,
            "poll": ctx.poll,
            "event": event,
            "worker": ctx.worker_id,
            "pid": os.getpid(),
            "at": time.time(),
            "language": "python",
        }
    )
    with open(LEDGER, "a") as ledger:
        ledger.write(line + "\n")
        ledger.flush()
        os.fsync(ledger.fileno())


@worker.step()
async def py_start(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    record(ctx, "run")
    return {"value": input["n"] + 1, "trail": ["python"]}


@worker.step()
async def py_add(ctx: StepContext, ts_double: dict[str, Any]) -> dict[str, Any]:
    record(ctx, "run")
    return {"value": ts_double["value"] + 3, "trail": [*ts_double["trail"], "python"]}


@worker.step()
async def nap(ctx: StepContext, input: dict[str, Any]) -> object:
    record(ctx, "run")
    return ctx.sleep(f"{int(input.get('sleep_ms', 1000))}ms", result={"napped": True})


@worker.step()
async def ask(ctx: StepContext, input: dict[str, Any]) -> object:
    record(ctx, "run")
    return ctx.request_approval(kind="refund", timeout="1h", data={"amount": input.get("amount", 0)})


@worker.step()
async def after(ctx: StepContext, nap: Any = None, ask: Any = None) -> dict[str, Any]:
    record(ctx, "run")
    results = {name: value for name, value in (("nap", nap), ("ask", ask)) if value is not None}
    return {"after": results}


if __name__ == "__main__":
    print(f"worker {os.getpid()} ready", file=sys.stderr, flush=True)
    worker.run()
