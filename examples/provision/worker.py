"""The steps of the provision-server workflow, served to the `infra` task queue."""

from __future__ import annotations

from typing import Any

from cerebelum import RetryAfter, StepContext, Worker

worker = Worker(task_queue="infra")


class TransientCloudError(Exception):
    """The fake cloud API fails the first call of every server, like real ones do."""


@worker.step()
async def create_server(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    if ctx.attempt == 1:
        raise TransientCloudError("cloud API returned 503")
    return {"id": f"srv-{input['region']}-{ctx.execution_id[:6]}"}


@worker.step()
async def wait_for_ip(ctx: StepContext, create_server: dict[str, Any]) -> dict[str, Any] | RetryAfter:
    if ctx.poll < 2:
        ctx.heartbeat({"polls": ctx.poll})
        return ctx.retry_after(seconds=0.3)
    return {"ip": "203.0.113.10", "server": create_server["id"]}


@worker.step()
def reserve_dns(input: dict[str, Any]) -> dict[str, Any]:
    return {"name": f"app.{input['region']}.example.com", "existing": False}


@worker.step()
async def configure_dns(ctx: StepContext, reserve_dns: dict[str, Any], wait_for_ip: dict[str, Any]) -> object:
    record = {"name": reserve_dns["name"], "a": wait_for_ip["ip"]}
    return ctx.sleep("2s", result=record)  # durable: DNS propagation


@worker.step()
async def send_welcome_email(configure_dns: dict[str, Any]) -> dict[str, Any]:
    return {"sent_to": f"admin@{configure_dns['name']}"}


@worker.step()
async def done(create_server: dict[str, Any]) -> dict[str, Any]:
    return {"ready": create_server["id"]}


if __name__ == "__main__":
    worker.run()
