"""The steps under test: charge an order, wait until the payment settles, archive it."""

from typing import Any

from pydantic import BaseModel

from cerebelum import NonRetryableError, StepContext, Worker

worker = Worker("orders")


class Order(BaseModel):
    id: str
    amount: int


@worker.step()
async def charge(input: Order) -> dict[str, Any]:
    if input.amount <= 0:
        raise NonRetryableError("nothing to charge", type="EmptyOrder")
    return {"order": input.id, "charged": input.amount}


@worker.step()
def settle(charge: dict[str, Any], ctx: StepContext) -> Any:
    if ctx.poll < 2:  # the bank needs a few looks before the payment settles
        return ctx.retry_after("100ms")
    return {"settled": charge["order"]}


@worker.step()
def archive(settle: dict[str, Any], ctx: StepContext) -> int:
    rows = [f"{settle['settled']}-{n}" for n in range(3)]
    for n, _row in enumerate(rows):
        ctx.heartbeat({"archived": n})  # raises StepCancelled once the step must stop
    return len(rows)


if __name__ == "__main__":
    worker.run()
