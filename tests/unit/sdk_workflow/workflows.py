"""Workflow functions the tests run (module level, as users write them)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from cerebelum.workflow import (
    ApprovalRejectedError,
    StepFailedError,
    StepOptions,
    WorkflowContext,
)


async def charge(order: str) -> str:  # a step function, only named by the workflows
    return order


@dataclass
class Order:
    id: str
    amount: int


async def two_steps(wf: WorkflowContext, input: Order) -> dict[str, Any]:
    first = await wf.step(charge, order=input.id, options=StepOptions(timeout=30, retry={"maxAttempts": 2}))
    second = await wf.step("ship", order=input.id, amount=input.amount)
    return {"first": first, "second": second}


async def parallel(wf: WorkflowContext) -> list[Any]:
    return list(await asyncio.gather(*(wf.step("check", region=r) for r in ("eu", "us", "ap"))))


async def polling(wf: WorkflowContext) -> int:
    for attempt in range(30):
        await wf.step("check_droplet", attempt=attempt)
        await wf.sleep(5)
    return 30


async def approvals(wf: WorkflowContext) -> dict[str, Any]:
    grant = await wf.wait_for_approval("go_live", timeout="1h", data={"cost": 3})
    return grant


async def signals(wf: WorkflowContext) -> dict[str, Any]:
    signal = await wf.wait_for_signal("approve", timeout=60)
    return {"name": signal.name, "data": signal.data, "sender": signal.sender, "at": str(signal.received_at)}


async def children(wf: WorkflowContext, input: list[str]) -> list[Any]:
    return [await wf.child("provision", {"host": host}, on_parent_cancel="abandon") for host in input]


async def compensating(wf: WorkflowContext) -> str:
    try:
        await wf.step("charge")
    except StepFailedError as exc:
        await wf.step("refund", reason=exc.error_type)
        return f"refunded after {exc.step}"
    return "charged"


async def rejected(wf: WorkflowContext) -> str:
    try:
        await wf.wait_for_approval("deploy")
    except ApprovalRejectedError as exc:
        return f"rejected: {exc.message}"
    return "approved"


async def mixed(wf: WorkflowContext, input: int) -> dict[str, Any]:
    """Parallel branches of different commands, a loop and a child: a scenario for the cache property."""

    async def branch(n: int) -> Any:
        await wf.sleep(n)
        return await wf.step("work", n=n)

    results = await asyncio.gather(*(branch(n) for n in range(input)))
    signal = await wf.wait_for_signal("more")
    child = await wf.child("sub", {"n": signal.data})
    return {"results": list(results), "child": child, "id": str(wf.uuid4()), "r": wf.random().random()}


async def ending_by_continue_as_new(wf: WorkflowContext, input: int) -> None:
    await wf.step("batch", cursor=input)
    wf.continue_as_new(input + 10)


async def catching_cancellation(wf: WorkflowContext) -> str:
    try:
        await wf.step("long")
    except asyncio.CancelledError:
        await wf.step("cleanup")
        return "cleaned up"
    return "done"


async def cancellable(wf: WorkflowContext) -> str:
    await asyncio.gather(wf.step("a"), wf.sleep("1h"))
    return "done"


async def failing(wf: WorkflowContext) -> None:
    await wf.step("a")
    raise ValueError("bad state")


async def first_done(wf: WorkflowContext) -> int:
    """Names its next step after how many checks had finished when it woke: sensitive to activation borders."""
    checks = [asyncio.create_task(wf.step("check", region=r)) for r in ("eu", "us", "ap")]
    done, pending = await asyncio.wait(checks, return_when=asyncio.FIRST_COMPLETED)
    await wf.step(f"after_{len(done)}")
    await asyncio.gather(*pending)
    return len(done)
