"""The chaos suite's worker: runs every step of the chaos workflow and writes each attempt to a ledger.

The ledger is a file outside the engine (``$LEDGER``), one JSON line per side effect: ``start``
when an attempt begins, ``end`` when it returns its outcome (``ok``, ``sleep`` or ``fail``).
Each line is one ``write(2)`` on an ``O_APPEND`` descriptor, so lines from concurrent workers never
interleave, and a line is in the page cache the moment the call returns: a SIGKILL a microsecond
later cannot lose it (only a power cut could, which this suite does not simulate).

Behaviour comes from the input only (see workload.py); the worker itself holds no state.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any, TypeVar

from cerebelum import ApplicationError, NonRetryableError, StepContext, Worker

LEDGER_FD = os.open(os.environ["LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
worker = Worker(task_queue=os.environ.get("TASK_QUEUE", "chaos"), max_concurrency=32, max_pollers=4, poll_wait=5.0)


def record(ctx: StepContext, event: str, **extra: Any) -> None:
    line = {
        "execution": ctx.execution_id,
        "step": ctx.step,
        "attempt": ctx.attempt,
        "poll": ctx.poll,
        "event": event,
        "worker": ctx.worker_id,
        "pid": os.getpid(),
        "at": time.time(),
        **extra,
    }
    os.write(LEDGER_FD, (json.dumps(line, separators=(",", ":")) + "\n").encode())


T = TypeVar("T")


async def work(ctx: StepContext, input: dict[str, Any]) -> None:
    """A side effect that takes a little time, so kills land in the middle of steps too."""
    record(ctx, "start")
    await asyncio.sleep(int(input.get("work_ms", 0)) / 1000)


def fail(ctx: StepContext, error: ApplicationError) -> ApplicationError:
    record(ctx, "end", outcome="fail", error=error.type)
    return error


def done(ctx: StepContext, value: T, outcome: str = "ok") -> T:
    record(ctx, "end", outcome=outcome)
    return value


@worker.step()
async def prepare(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    await work(ctx, input)
    return done(ctx, {"n": input["n"]})


def fan(name: str) -> None:
    async def step(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
        await work(ctx, input)
        if name == "fan_b" and input.get("fan_fail") and ctx.attempt == 1:
            raise fail(ctx, ApplicationError("injected failure in the parallel group", type="Injected"))
        return done(ctx, {"branch": name})

    step.__name__ = name
    worker.step(name=name)(step)


for _name in ("fan_a", "fan_b", "fan_c"):
    fan(_name)


@worker.step()
async def flaky(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    await work(ctx, input)
    if ctx.attempt <= int(input["flaky_failures"]):
        raise fail(ctx, ApplicationError(f"injected failure of attempt {ctx.attempt}", type="Injected"))
    if input["fate"] == "fatal":
        raise fail(ctx, NonRetryableError("this input can never succeed", type="Fatal"))
    return done(ctx, {"attempt": ctx.attempt})


@worker.step()
async def nap(ctx: StepContext, input: dict[str, Any]) -> object:
    await work(ctx, input)
    return done(ctx, ctx.sleep(f"{int(input['sleep_ms'])}ms", result={"napped": True}), "sleep")


@worker.step()
async def route(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    await work(ctx, input)
    verdict = "refuse" if input["fate"] == "diverted" else "pass"
    return done(ctx, {"express": input["fate"] == "express", "verdict": verdict})


@worker.step()
async def standard(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    await work(ctx, input)
    return done(ctx, {"via": "standard"})


@worker.step()
async def express(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    await work(ctx, input)
    return done(ctx, {"via": "express"})


@worker.step()
async def finish(
    ctx: StepContext, input: dict[str, Any], gate: dict[str, Any], nap: dict[str, Any], standard: Any = None
) -> dict[str, Any]:
    await work(ctx, input)
    output = {
        "n": input["n"],
        "via": "standard" if standard is not None else "express",
        "approver": gate["approver"],
        "ticket": (gate.get("payload") or {}).get("ticket"),
        "napped": nap.get("napped"),
    }
    return done(ctx, output)


if __name__ == "__main__":
    print(f"chaos worker {os.getpid()} ready", file=sys.stderr, flush=True)
    worker.run()
