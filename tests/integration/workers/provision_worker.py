"""A test worker for code workflows (issue 18): the seed's section 4.1 `wait_for_ip`, as code.

provision(input)  the workflow: create a server, poll it up to 30 times with a durable sleep
                  between polls, wait for the approval `go_live`, configure its hosts in parallel
nd_demo(input)    a step, a signal, a step: CODE_VERSION=2 renames its first step (non-determinism)
counter(input)    counts with a step per iteration, continuing as new every `per_run` iterations

Every step run is appended to $LEDGER, so a test can check that no completed step ran twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from cerebelum import StepContext, Worker, WorkflowContext

worker = Worker(task_queue=os.environ.get("TASK_QUEUE", "test"), max_concurrency=20)
VERSION = os.environ.get("CODE_VERSION", "1")


def record(ctx: StepContext, **fields: Any) -> int:
    """Append this run to the ledger; returns how many runs of its function this execution had."""
    line = {"execution": ctx.execution_id, "step": ctx.step, "function": ctx.function, "at": time.time(), **fields}
    path = os.environ["LEDGER"]
    with open(path, "a") as ledger:
        ledger.write(json.dumps(line) + "\n")
        ledger.flush()
        os.fsync(ledger.fileno())
    with open(path) as ledger:
        runs = [json.loads(text) for text in ledger if text.strip()]
    return sum(1 for run in runs if run["execution"] == ctx.execution_id and run["function"] == ctx.function)


@worker.step()
async def create_server(ctx: StepContext, region: str) -> dict[str, Any]:
    record(ctx)
    return {"id": f"srv-{region}"}


@worker.step()
async def check_droplet(ctx: StepContext, server_id: str) -> dict[str, Any]:
    checks = record(ctx)
    ready = checks >= int(os.environ.get("CHECKS_UNTIL_READY", "3"))
    return {"ip": "10.0.0.7" if ready else None, "hosts": ["a", "b", "c"], "server": server_id}


@worker.step()
async def configure(ctx: StepContext, host: str) -> dict[str, Any]:
    record(ctx)
    return {"configured": host}


@worker.step()
async def first(ctx: StepContext) -> str:
    record(ctx)
    return "first"


@worker.step()
async def renamed(ctx: StepContext) -> str:
    record(ctx)
    return "renamed"


@worker.workflow()
async def provision(wf: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    server = await wf.step(create_server, region=input["region"])
    droplet: dict[str, Any] = {}
    for _ in range(30):
        droplet = await wf.step(check_droplet, server_id=server["id"])
        if droplet["ip"]:
            break
        await wf.sleep(input.get("poll", "1s"))
    approval = await wf.wait_for_approval("go_live", timeout="72h")
    configured = await asyncio.gather(*(wf.step(configure, host=host) for host in droplet["hosts"]))
    return {"ip": droplet["ip"], "approver": approval["approver"], "hosts": [c["configured"] for c in configured]}


@worker.workflow()
async def nd_demo(wf: WorkflowContext, input: dict[str, Any]) -> str:
    result = await (wf.step(first) if VERSION != "2" else wf.step(renamed))
    go = await wf.wait_for_signal("go")
    return f"{result} then {go.data} then {await wf.step(first)}"


@worker.step()
async def tick(n: int) -> int:
    return n + 1


@worker.workflow()
async def counter(wf: WorkflowContext, input: dict[str, Any]) -> int:
    """Counts to input["until"] one step at a time, continuing as new every input["per_run"] steps."""
    count = int(input["count"])
    for _ in range(int(input["per_run"])):
        if count >= int(input["until"]):
            return count
        count = await wf.step(tick, n=count)
    return wf.continue_as_new({**input, "count": count})


if __name__ == "__main__":
    print(f"worker {os.getpid()} ready (code version {VERSION})", file=sys.stderr, flush=True)
    worker.run()
