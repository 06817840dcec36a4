"""The scale-out benchmark's worker: one process polling every engine replica.

Today a worker reaches one engine per `Worker` (issue 21: workers poll each replica), so this
process runs one `Worker` per address in $CEREBELUM_ADDRESSES (comma-separated), all serving the
no-op steps s1..s200 of bench/cerebelum_worker.py on the `bench` task queue, in one event loop.
$BENCH_CONCURRENCY and $BENCH_POLLERS are this process's totals, split evenly over the replicas,
so that the worker side has the same capacity whatever the number of replicas. SIGTERM drains.
"""

from __future__ import annotations

import asyncio
import os
import signal

from cerebelum import Worker


def _worker(address: str, *, concurrency: int, pollers: int) -> Worker:
    worker = Worker(task_queue="bench", address=address, max_concurrency=concurrency, max_pollers=pollers)

    def register(name: str) -> None:
        async def step() -> None:
            return None

        worker.step(name=name)(step)

    for index in range(1, 201):
        register(f"s{index}")
    return worker


async def main() -> None:
    addresses = [a for a in os.environ["CEREBELUM_ADDRESSES"].split(",") if a]
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "200"))
    pollers = int(os.environ.get("BENCH_POLLERS", "16"))
    workers = [
        _worker(
            address,
            concurrency=max(1, concurrency // len(addresses)),
            pollers=max(2, pollers // len(addresses)),
        )
        for address in addresses
    ]
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def stop() -> None:
        if not stopping:
            stopping.extend(loop.create_task(worker.shutdown()) for worker in workers)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    await asyncio.gather(*(w.run_async() for w in workers))


if __name__ == "__main__":
    asyncio.run(main())
