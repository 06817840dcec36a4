"""Throughput: many concurrent executions of no-op steps, engine and workers as processes.

Prints steps per second between the first ExecutionStarted and the last ExecutionSucceeded, as
recorded by the engine (durable commits on the chosen store). The full comparison with peers is
the benchmark suite's; this is the quick measurement.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for bench.*

from bench.common import recorded_at
from bench.harness import running_engine
from cerebelum import Client


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--db", default=None, help="store URL (default: a temp SQLite file)")
    args = parser.parse_args()
    with running_engine(db=args.db, workers=args.workers) as (address, db):
        with Client(address=address) as client:
            steps = [f"s{i}" for i in range(1, args.steps + 1)]
            client.apply_workflow("throughput", {"taskQueue": "bench", "timeline": steps})
            began = time.perf_counter()
            ids = [client.start("throughput", {}).id for _ in range(args.executions)]
            started = time.perf_counter() - began
            for execution_id in ids:
                final = client.wait(execution_id, timeout=600)
                assert final.phase == "Succeeded", final.error
            wall = time.perf_counter() - began
            firsts, lasts = [], []
            for execution_id in ids:
                history = client.history(execution_id)
                firsts.append(recorded_at(history[0]))
                lasts.append(recorded_at(history[-1]))
        total = args.executions * args.steps
        engine_seconds = (max(lasts) - min(firsts)).total_seconds()
        print(
            f"store: {db.split(':')[0]}; {args.executions} executions x {args.steps} no-op steps,"
            f" {args.workers} workers"
        )
        print(f"starting them took {started:.2f} s")
        print(f"steps/s: {total / engine_seconds:.0f} in the engine's history; {total / wall:.0f} wall clock")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
