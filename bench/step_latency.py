"""Step-to-step latency: one execution of N sequential no-op steps, engine and worker as processes.

Prints p50/p90/p99 of the time between consecutive StepCompleted events, as recorded by the
engine in the history (durable commits on the chosen store). The full comparison with peers
lives in the benchmark suite; this is the quick measurement.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for bench.*

from bench.common import recorded_at
from bench.harness import running_engine
from cerebelum import Client


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--db", default=None, help="store URL (default: a temp SQLite file)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with running_engine(db=args.db, workers=1) as (address, db):
        with Client(address=address) as client:
            client.apply_workflow(
                "latency", {"taskQueue": "bench", "timeline": [f"s{i}" for i in range(1, args.steps + 1)]}
            )
            gaps: list[float] = []
            walls: list[float] = []
            for _ in range(args.runs):
                began = time.perf_counter()
                execution = client.start("latency", {})
                final = client.wait(execution.id, timeout=120)
                walls.append(time.perf_counter() - began)
                assert final.phase == "Succeeded", final.error
                done = [recorded_at(e) for e in client.history(execution.id) if e.type == "StepCompleted"]
                gaps.extend((b - a).total_seconds() * 1000 for a, b in itertools.pairwise(done))
        print(f"store: {db.split(':')[0]}; {args.runs} executions x {args.steps} sequential no-op steps")
        print(
            f"step-to-step ms: p50 {statistics.median(gaps):.2f}  p90 {percentile(gaps, 0.9):.2f}  "
            f"p99 {percentile(gaps, 0.99):.2f}  (n={len(gaps)})"
        )
        print(f"wall per execution s: {', '.join(f'{w:.2f}' for w in walls)}")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
