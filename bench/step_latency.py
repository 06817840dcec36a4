"""Step-to-step latency: one execution of N sequential no-op steps, engine and worker as processes.

Prints p50/p90/p99 of the time between consecutive StepCompleted events, as recorded by the
engine in the history (durable commits on the chosen store). The full comparison with peers
lives in the benchmark suite; this is the quick measurement.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from cerebelum import Client

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.support.processes import free_port  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--db", default=None, help="store URL (default: a temp SQLite file)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cerebelum-bench-"))
    db = args.db or f"sqlite:///{workdir / 'bench.db'}"
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "CEREBELUM_ADDRESS": address}
    engine = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cerebelum_operator.cli",
            "dev",
            "--address",
            address,
            "--db",
            db,
            "--log-level",
            "warning",
        ]
    )
    worker = subprocess.Popen([sys.executable, str(HERE / "noop_worker.py")], env=env)
    try:
        grpc.channel_ready_future(grpc.insecure_channel(address)).result(timeout=30)
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
                done = [e.at for e in client.history(execution.id) if e.type == "StepCompleted"]
                gaps.extend((b - a).total_seconds() * 1000 for a, b in itertools.pairwise(done))
        print(f"store: {db.split(':')[0]}; {args.runs} executions x {args.steps} sequential no-op steps")
        print(
            f"step-to-step ms: p50 {statistics.median(gaps):.2f}  p90 {percentile(gaps, 0.9):.2f}  "
            f"p99 {percentile(gaps, 0.99):.2f}  (n={len(gaps)})"
        )
        print(f"wall per execution s: {', '.join(f'{w:.2f}' for w in walls)}")
        return 0
    finally:
        for process in (worker, engine):
            process.terminate()
            process.wait(timeout=15)


if __name__ == "__main__":
    raise SystemExit(main())
