"""A test worker whose every step run is written to a ledger file outside the engine.

Behaviour is driven by the step's input so one worker serves every test workflow:
  input.sleep_ms       -> step "nap" asks the engine for a durable sleep of that long
  input.hold_s         -> step "slow" heartbeats for that long before finishing (or until cancelled)
  input.payload_bytes  -> step "big" returns a string that long
  input.gate           -> step "gated" runs until that file exists (a test opens it when ready)
  step "flaky"         -> fails its first attempt, succeeds after
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from cerebelum import StepContext, Worker

LEDGER = os.environ["LEDGER"]
worker = Worker(
    task_queue=os.environ.get("TASK_QUEUE", "test"), max_concurrency=int(os.environ.get("MAX_CONCURRENCY", "20"))
)


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
        }
    )
    with open(LEDGER, "a") as ledger:
        ledger.write(line + "\n")
        ledger.flush()
        os.fsync(ledger.fileno())


def plain(name: str) -> None:
    async def step(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
        record(ctx, "run")
        return {"step": name, "attempt": ctx.attempt}

    step.__name__ = name
    worker.step(name=name)(step)


for step_name in [f"s{i}" for i in range(1, 21)] + ["a", "b", "c", "after"]:
    plain(step_name)


@worker.step()
async def nap(ctx: StepContext, input: dict[str, Any]) -> object:
    record(ctx, "run")
    return ctx.sleep(f"{int(input.get('sleep_ms', 1000))}ms", result={"napped": True})


@worker.step()
async def slow(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    record(ctx, "start")
    deadline = time.monotonic() + float(input.get("hold_s", 5))
    try:
        while time.monotonic() < deadline:
            ctx.heartbeat({"left": deadline - time.monotonic()})
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:  # the SDK cancels an async step when the engine asks it to
        record(ctx, "cancelled")
        raise
    record(ctx, "run")
    return {"slow": "done", "pid": os.getpid()}


@worker.step()
async def gated(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    record(ctx, "start")
    while not await asyncio.to_thread(os.path.exists, input["gate"]):
        ctx.heartbeat(None)
        await asyncio.sleep(0.05)
    record(ctx, "run")
    return {"gated": "opened"}


@worker.step()
async def flaky(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    record(ctx, "run")
    if ctx.attempt == 1:
        raise RuntimeError("the first attempt fails")
    return {"flaky": ctx.attempt}


@worker.step()
async def big(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    record(ctx, "run")
    return {"blob": "x" * int(input["payload_bytes"])}


if __name__ == "__main__":
    print(f"worker {os.getpid()} ready", file=sys.stderr, flush=True)
    worker.run()
