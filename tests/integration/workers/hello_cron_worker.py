"""Temporal's hello_cron sample, written plainly: one step that greets, started by a schedule."""

from __future__ import annotations

from typing import Any

from cerebelum import StepContext, Worker

worker = Worker(task_queue="hello-cron")


@worker.step()
async def greet(ctx: StepContext, input: dict[str, Any]) -> dict[str, str]:
    return {"greeting": f"Hello, {input['name']}!"}


if __name__ == "__main__":
    worker.run()
