"""A worker that writes down the idempotency key of every attempt it runs (to the file named by KEYS).

Step ``charge`` fails its first attempt of every run and succeeds on the retry; step ``check``
asks for another iteration (``again``) until its third run.
"""

from __future__ import annotations

import json
import os

from cerebelum import StepContext, Worker

KEYS = os.environ["KEYS"]
worker = Worker(task_queue="keys")


def record(ctx: StepContext) -> None:
    line = {"step": ctx.step, "run": ctx.run, "attempt": ctx.attempt, "key": ctx.idempotency_key}
    with open(KEYS, "a") as keys:
        keys.write(json.dumps(line) + "\n")


@worker.step()
def charge(ctx: StepContext) -> dict[str, str]:
    record(ctx)
    if ctx.attempt == 1:
        raise RuntimeError("the payment API timed out")
    return {"charged": ctx.idempotency_key}


@worker.step()
def check(ctx: StepContext) -> dict[str, bool]:
    record(ctx)
    return {"again": ctx.run < 3}


if __name__ == "__main__":
    worker.run()
