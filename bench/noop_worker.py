"""A worker serving no-op steps s1..s200 for the latency benchmark."""

from __future__ import annotations

from cerebelum import Worker

worker = Worker(task_queue="bench", max_concurrency=50)


def _register(name: str) -> None:
    async def step() -> None:
        return None

    worker.step(name=name)(step)


for index in range(1, 201):
    _register(f"s{index}")

if __name__ == "__main__":
    worker.run()
