"""Chaos with several engines sharing one PostgreSQL store, their shards balanced (`--shards auto`).

Every engine kill moves shards twice: the others take the dead engine's share in their next
round, then hand it back when it serves again. Each engine has workers of its own; the client
talks to the first engine, which forwards what belongs to the others (and is killed too).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from cerebelum import Client
from tests.support.processes import EngineProcess

from .driver import DevBackend
from .workload import SPEC, WORKFLOW

__all__ = ["SplitBackend"]


@dataclass
class SplitBackend(DevBackend):
    replicas: int = 3
    engines: list[EngineProcess] = field(default_factory=list)
    kills_by_engine: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"split-{self.replicas}/postgresql"

    @property
    def worker_addresses(self) -> list[str]:
        return [engine.address for engine in self.engines]

    def launch(self) -> None:
        self.engines = [
            EngineProcess(
                database_url=self.database_url,
                log_path=self.workdir / f"engine-{n}.log",
                extra_args=("--shards", "auto", "--replica", f"r{n}"),
            )
            for n in range(self.replicas)
        ]
        for engine in self.engines:
            engine.start()
        self.engine = self.engines[0]
        self._client = Client(address=self.engine.address, timeout=10)
        self.client.apply_workflow(WORKFLOW, SPEC)

    def kill_engine(self, rng: random.Random) -> None:
        victim = rng.choice(self.engines)
        self.kills_by_engine[victim.address] = self.kills_by_engine.get(victim.address, 0) + 1
        victim.kill()
        time.sleep(rng.uniform(0, 1.5))  # sometimes long enough for the others to take its shards
        victim.launch()
        victim.wait_ready(timeout=60)

    def exit_status(self) -> int | None:
        for engine in self.engines:
            if engine.process is not None and (status := engine.process.poll()) is not None:
                return status
        return None

    def restart_engine(self) -> None:
        for engine in self.engines:
            if engine.process is not None and engine.process.poll() is not None:
                engine.start()

    def shutdown(self) -> None:
        if self._client is not None:
            self._client.close()
        for engine in self.engines:
            engine.stop()
