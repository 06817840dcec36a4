"""The chaos suite's long run: thousands of executions, dozens of engine kills, then the figures.

    python -m tests.chaos.long_run --store sqlite --executions 2000 --engine-kills 50
    python -m tests.chaos.long_run --store postgres --executions 2000 --engine-kills 50 --database-restarts 8

The same driver and checks as the CI-sized tests (tests/chaos/test_chaos_*.py), at a larger size.
It prints the figures as JSON and as a Markdown table (``--markdown FILE`` appends the table
there too), and exits 1 when any invariant broke, listing the violations. ``--seed`` replays a
plan; ``--workdir`` keeps the engine's and workers' logs, the ledger and the store for a look
afterwards (a temporary directory, removed at the end, otherwise).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.support.postgres import PostgresServer

from .driver import ChaosPlan, ChaosReport, ChaosRun, DevBackend, seed_from_environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.long_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--executions", type=int, default=2000)
    parser.add_argument("--engine-kills", type=int, default=50)
    parser.add_argument("--worker-kills", type=int, default=None, help="default: half the engine kills")
    parser.add_argument("--database-restarts", type=int, default=None, help="PostgreSQL only; default: 8")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument(
        "--start-window", type=float, default=None, help="seconds over which executions start; default: 0.1 s each"
    )
    parser.add_argument("--finish-timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None, help="append the figures' table to this file")
    args = parser.parse_args(argv)

    restarts = args.database_restarts if args.database_restarts is not None else 8
    if args.store == "sqlite":
        restarts = 0
    plan = ChaosPlan(
        seed=args.seed if args.seed is not None else seed_from_environment(),
        executions=args.executions,
        engine_kills=args.engine_kills,
        worker_kills=args.worker_kills if args.worker_kills is not None else args.engine_kills // 2,
        database_restarts=restarts,
        workers=args.workers,
        start_window_s=args.start_window if args.start_window is not None else args.executions * 0.1,
        finish_timeout_s=args.finish_timeout,
    )
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cerebelum-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server: PostgresServer | None = None
    try:
        if args.store == "postgres":
            server = PostgresServer.start()
            backend = DevBackend(database_url=server.create_database("chaos"), workdir=workdir, postgres=server)
        else:
            backend = DevBackend(database_url=f"sqlite:///{workdir / 'engine.db'}", workdir=workdir)
        report = ChaosRun(plan, backend, workdir).run()
    finally:
        if server is not None:
            server.stop()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report.summary, indent=2))
    table = markdown(report)
    print(table)
    if args.markdown is not None:
        with args.markdown.open("a") as out:
            out.write(table + "\n")
    if report.problems:
        print(f"{len(report.problems)} violations:", file=sys.stderr)
        for problem in report.problems[:200]:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


def markdown(report: ChaosReport) -> str:
    s = report.summary

    def spread(figure: dict[str, Any]) -> str:
        return f"{figure['p50']} / {figure['max']}" if figure.get("count") else "-"

    rows = [
        ("store", report.backend),
        ("seed", s["seed"]),
        ("executions", f"{s['executions']} ({', '.join(f'{k} {v}' for k, v in sorted(s['phases'].items()))})"),
        ("engine SIGKILLs", s["engine_kills"]),
        ("worker SIGKILLs", s["worker_kills"]),
        ("database server restarts (immediate stop)", s["database_restarts"]),
        ("engine exits on its own", len(s["engine_exits"])),
        ("history events", s["events"]),
        ("steps completed", s["steps_completed"]),
        ("attempts (StepStarted)", s["attempts"]),
        ("failed attempts by error", ", ".join(f"{k} {v}" for k, v in s["failed_attempts_by_error"].items())),
        ("attempts run by workers (ledger)", s["ledger_runs"]),
        ("steps cut mid-run by a worker kill", s["steps_cut_by_worker_kills"]),
        ("side effects repeated (a step's work finished twice or more)", s["repeated_side_effects"]),
        ("steps with a repeated side effect", s["steps_with_repeated_side_effects"]),
        ("engine restart after a kill, s (p50 / max)", spread(s["engine_restart_s"])),
        ("first committed event after a kill, s (p50 / max)", spread(s["first_progress_after_kill_s"])),
        ("executions in flight at a kill (p50 / max)", spread(s["executions_in_flight_at_kill"])),
        (
            "kill to the end of an execution in flight at it, s (p50 / max)",
            spread(s["in_flight_execution_finished_after_kill_s"]),
        ),
        ("database down, s (p50 / max)", spread(s["database_down_s"])),
        ("total time, s", s["duration_s"]),
        ("invariant violations", len(report.problems)),
    ]
    lines = ["| figure | value |", "| --- | --- |", *(f"| {name} | {value} |" for name, value in rows)]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
