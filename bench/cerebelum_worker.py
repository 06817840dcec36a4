"""The benchmark worker: no-op steps s1..s200, the code workflows `chain` and `fan` over them,
`nap`, which sleeps (one day, or until `wakeAt`), and
`items` and `item_step` for the map scenario (a list of input["count"] numbers, then one step per number).

With BENCH_LEDGER set, every step appends "<step> <epoch ns>" to that file when it starts, so
the latency scenario reads step-to-step times at microsecond resolution.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from cerebelum import StepContext, Worker, WorkflowContext

DAY_MS = 86_400_000

worker = Worker(
    task_queue="bench",
    max_cached_workflows=int(os.environ.get("BENCH_MAX_CACHED", "1000")),
    max_concurrency=int(os.environ.get("BENCH_CONCURRENCY", "200")),
    max_pollers=int(os.environ.get("BENCH_POLLERS", "16")),
)
_ledger = open(os.environ["BENCH_LEDGER"], "a", buffering=1) if os.environ.get("BENCH_LEDGER") else None  # noqa: SIM115


def _register(name: str) -> None:
    async def step() -> None:
        if _ledger is not None:
            _ledger.write(f"{name} {time.time_ns()}\n")

    worker.step(name=name)(step)


for index in range(1, 201):
    _register(f"s{index}")


@worker.step(name="nap")
async def nap(input: Any, ctx: StepContext) -> Any:
    """Sleep until input["wakeAt"] (epoch ms), or for a day without it."""
    wake_at = input.get("wakeAt") if isinstance(input, dict) else None
    duration_ms = DAY_MS if wake_at is None else max(1, int(wake_at) - time.time_ns() // 1_000_000)
    return ctx.sleep(duration_ms / 1000)


@worker.step(name="items")
async def items(input: Any) -> list[int]:
    """The map scenario's run-time list: 0 .. input["count"] - 1."""
    return list(range(int(input["count"])))


@worker.step(name="item_step")
async def item_step(value: int) -> int:
    """The no-op step run once per item of the list; it returns its item."""
    return value


@worker.workflow()
async def chain(wf: WorkflowContext, input: Any) -> None:
    """The latency and throughput shape as code: steps s1..sN in a row."""
    for index in range(1, int(input["steps"]) + 1):
        await wf.step(f"s{index}")


@worker.step(name="tick")
async def tick(n: int) -> int:
    return n + 1


@worker.workflow()
async def counter(wf: WorkflowContext, input: Any) -> int:
    """Counts to input["until"] with a step per iteration, continuing as new every input["per_run"]."""
    count = int(input["count"])
    for _ in range(int(input["per_run"])):
        if count >= int(input["until"]):
            return count
        count = await wf.step(tick, n=count)
    return wf.continue_as_new({**input, "count": count})


@worker.workflow()
async def parked(wf: WorkflowContext, input: Any) -> Any:
    """One step, then a wait for a signal that never comes: it stays in the worker's cache."""
    await wf.step("s1")
    return (await wf.wait_for_signal("never")).data


@worker.workflow()
async def fan(wf: WorkflowContext, input: Any) -> None:
    """The fan-out shape as code: steps s1..sN at once."""
    await asyncio.gather(*(wf.step(f"s{index}") for index in range(1, int(input["steps"]) + 1)))


if __name__ == "__main__":
    if os.environ.get("BENCH_READY"):  # imported and about to connect: the runner waits for this
        with open(os.environ["BENCH_READY"], "w") as ready:
            ready.write(str(os.getpid()))
    worker.run()
