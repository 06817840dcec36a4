"""Append latency on the hot path: `python -m tests.store.bench_append [N]`.

Each append writes 2 events and applies 2 actions (schedule a task, lease it), which is
what one workflow step costs the store. Prints the median and p99 per backend.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from cerebelum_operator.engine import events as ev
from cerebelum_operator.engine.actions import Action, LeaseTask
from cerebelum_operator.store import open_store
from tests.store.helpers import Appender
from tests.support.postgres import PostgresUnavailable, start_postgres

__all__ = ["measure"]


def measure(url: str, appends: int) -> tuple[float, float]:
    """(median, p99) latency of one append, in microseconds."""
    store = open_store(url)
    try:
        store.migrate()
        appender = Appender(store)
        appender.start("bench")
        latencies = []
        for i in range(appends):
            token = f"bench/a/{i}/0/{appender.last_seq['bench'] + 1}"
            scheduled = ev.StepScheduled("a", i, 0, token, "default", i)
            started = ev.StepStarted("a", i, token, "w1")
            actions: list[Action] = [appender.schedule(token), LeaseTask(token, "w1", i + 10_000, i + 30_000)]
            begin = time.perf_counter()
            appender.append("bench", scheduled, started, actions=actions, at_ms=i)
            latencies.append(time.perf_counter() - begin)
        latencies.sort()
        return statistics.median(latencies) * 1e6, latencies[int(len(latencies) * 0.99)] * 1e6
    finally:
        store.close()


def main() -> None:
    appends = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "sqlite synchronous=NORMAL": f"sqlite:///{Path(tmp) / 'normal.db'}",
            "sqlite synchronous=FULL": f"sqlite:///{Path(tmp) / 'full.db'}?synchronous=FULL",
        }
        for name, url in runs.items():
            print(f"{name:28} median {{:7.0f}} us  p99 {{:7.0f}} us".format(*measure(url, appends)))
    try:
        server = start_postgres()
    except PostgresUnavailable as e:
        print(f"postgresql: skipped ({e})")
        return
    try:
        url = server.create_database()
        print(f"{'postgresql (fsync=off)':28} median {{:7.0f}} us  p99 {{:7.0f}} us".format(*measure(url, appends)))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
