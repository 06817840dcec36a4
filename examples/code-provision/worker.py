"""The provision example as code: a loop of checks with a durable sleep between them, an approval
and a parallel group, in one Python function that the worker runs (docs/code-workflows.md).

    cerebelum apply -f examples/code-provision/workflow.yaml
    python examples/code-provision/worker.py
    cerebelum start provision-code --input '{"region": "ams3"}'
"""

from __future__ import annotations

import asyncio
from typing import Any

from cerebelum import Worker, WorkflowContext

worker = Worker("provision-code")


@worker.step()
async def create_server(region: str) -> dict[str, Any]:
    return {"id": f"srv-{region}"}


@worker.step()
async def check_droplet(server_id: str, check: int) -> dict[str, Any]:
    ready = check >= 2  # the third check finds the server's address
    return {"ip": "203.0.113.10" if ready else None, "hosts": ["web-1", "web-2"]}


@worker.step()
async def configure(host: str, ip: str) -> dict[str, Any]:
    return {"host": host, "ip": ip}


@worker.workflow()
async def provision(wf: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    server = await wf.step(create_server, region=input["region"])  # a step: leased to any worker
    droplet: dict[str, Any] = {}
    for check in range(30):
        droplet = await wf.step(check_droplet, server_id=server["id"], check=check)
        if droplet["ip"]:
            break
        await wf.sleep("1s")  # a durable timer in the engine, not in this process
    await wf.wait_for_approval("go_live", timeout="72h")  # cerebelum approve <id> go_live
    await asyncio.gather(*(wf.step(configure, host=host, ip=droplet["ip"]) for host in droplet["hosts"]))
    return {"ip": droplet["ip"], "hosts": droplet["hosts"]}


if __name__ == "__main__":
    worker.run()
