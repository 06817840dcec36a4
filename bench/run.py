"""Run every benchmark scenario on Cerebelum and its peers, then write docs/benchmarks.md.

    python bench/run.py            # the full run (tens of minutes), writes docs/benchmarks.md
    python bench/run.py --quick    # tiny sizes, into a temporary directory: proves the harness runs
    python bench/run.py --update --scenarios map   # measure these again, keep the last run's others

Each runner is a separate script writing one JSON result (see bench/README.md); a runner that
fails is reported as such in the document, and makes a --quick run exit non-zero.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.common import Result  # noqa: E402
from bench.report import write_report  # noqa: E402

SCENARIOS = (
    "latency",
    "throughput",
    "fanout",
    "map",
    "hibernation",
    "recovery",
    "code-scale",
    "kubernetes",
    "flow-control",
    "scale-out",
    "kubernetes-scale-out",
    "ui",
)


@dataclass(frozen=True)
class Runner:
    """One system on one store: the script and the scenarios it is asked to run."""

    key: str
    script: str
    store: str | None
    scenarios: tuple[str, ...]
    full_sizes: tuple[tuple[str, int], ...] = ()  # (scenario, size) where the full size is smaller
    size_option: str = "--size"
    extra: tuple[str, ...] = ()  # more options for the script, such as --code

    def command(
        self,
        scenario: str,
        out: Path,
        *,
        quick: bool,
        postgres_url: str | None,
        sleepers: int | None = None,
        api_starts: int | None = None,
    ) -> list[str]:
        command = [sys.executable, str(HERE / self.script), "--scenario", scenario, "--out", str(out), *self.extra]
        if sleepers is not None and scenario == "hibernation" and self.script == "cerebelum_runner.py":
            command += ["--size", str(sleepers)]
            if api_starts is not None:
                command += ["--api-starts", str(api_starts)]
        elif quick:
            command.append("--quick")
        elif scenario in dict(self.full_sizes):
            command += [self.size_option, str(dict(self.full_sizes)[scenario])]
        if self.store is not None:
            command += ["--store", self.store]
        if self.store == "postgres" and postgres_url:
            command += ["--postgres-url", postgres_url]
        return command


ENGINE_SCENARIOS = ("latency", "throughput", "fanout", "map", "hibernation", "recovery")
RUNNERS = (
    Runner("cerebelum-sqlite", "cerebelum_runner.py", "sqlite", ENGINE_SCENARIOS),
    # 100,000 sleepers is the SQLite target; on PostgreSQL a fifth of it keeps the run within the hour.
    Runner("cerebelum-postgres", "cerebelum_runner.py", "postgres", ENGINE_SCENARIOS, (("hibernation", 20_000),)),
    # The same shapes with the workflow as code, run by the worker (issue 18): Temporal's model.
    Runner(
        "cerebelum-code-sqlite",
        "cerebelum_runner.py",
        "sqlite",
        ("latency", "throughput", "fanout", "code-scale"),
        extra=("--code",),
    ),
    Runner("cerebelum-kubernetes", "kubernetes_runner.py", None, ("kubernetes",)),
    # Throughput with and without a task queue rate limit, in the same run (issue 19: its cost).
    Runner("cerebelum-flow-sqlite", "cerebelum_runner.py", "sqlite", ("flow-control",)),
    Runner("cerebelum-flow-postgres", "cerebelum_runner.py", "postgres", ("flow-control",)),
    # 1, 2 and 3 engine replicas sharing one PostgreSQL store (issue 21), bench/scale_out.py.
    Runner("cerebelum-scale-out-postgres", "scale_out.py", "postgres", ("scale-out",)),
    # 1, 2 and 3 active operator replicas (--shard-group) on PostgreSQL: bench/kubernetes_scale_out.py.
    Runner("cerebelum-kubernetes-scale-out-postgres", "kubernetes_scale_out.py", "postgres", ("kubernetes-scale-out",)),
    # DBOS creates about 60 workflows a second on SQLite: 5,000 keeps each of these under five minutes.
    Runner(
        "dbos-sqlite",
        "peers/dbos_peer.py",
        "sqlite",
        ENGINE_SCENARIOS,
        (("hibernation", 5_000), ("recovery", 5_000)),
        "--executions",
    ),
    Runner(
        "dbos-postgres",
        "peers/dbos_peer.py",
        "postgres",
        ENGINE_SCENARIOS,
        (("hibernation", 5_000), ("recovery", 5_000)),
        "--executions",
    ),
    # The dev server puts about 11-27 workflows a second to sleep here, and a 10,000 recovery
    # collapsed into storage timeouts: 500 keeps both within minutes (bench/peers/temporal_peer.py).
    Runner(
        "temporal",
        "peers/temporal_peer.py",
        None,
        ENGINE_SCENARIOS,
        (("hibernation", 500), ("recovery", 500)),
        "--executions",
    ),
    Runner("grpc-floor", "peers/grpc_floor.py", None, ("latency", "throughput")),
    # The web UIs on a big store in headless Chromium (bench/ui.py): 100,000 executions, a 10,000-event history.
    Runner("cerebelum-ui", "ui.py", "sqlite", ("ui",), extra=("--system", "cerebelum")),
    Runner("temporal-ui", "ui.py", None, ("ui",), extra=("--system", "temporal")),
)


def run_one(
    runner: Runner,
    scenario: str,
    results: Path,
    *,
    quick: bool,
    postgres_url: str | None,
    timeout_s: float,
    sleepers: int | None = None,
    api_starts: int | None = None,
) -> Result:
    out = results / f"{runner.key}--{scenario}.json"
    log = results / f"{runner.key}--{scenario}.log"
    command = runner.command(
        scenario, out, quick=quick, postgres_url=postgres_url, sleepers=sleepers, api_starts=api_starts
    )
    began = time.monotonic()
    print(f"== {runner.key} {scenario}", flush=True)
    with log.open("w") as output:
        try:
            finished = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
            code: int | str = finished.returncode
        except subprocess.TimeoutExpired:
            code = f"timed out after {timeout_s:.0f} s"
    elapsed = time.monotonic() - began
    if code == 0 and out.exists():
        result = Result.read(out)
        print(f"   {runner.key} {scenario}, {elapsed:.0f} s: {result.unsupported or result.figures}", flush=True)
        return result
    tail = " / ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
    print(f"   {runner.key} {scenario} FAILED ({code}) after {elapsed:.0f} s: {tail}", flush=True)
    return Result(runner.key, "", runner.store or "", scenario, {}, "", failed=f"exit {code}: {tail[-400:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes; write into a temporary directory")
    parser.add_argument("--scenarios", nargs="*", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--runners", nargs="*", choices=[r.key for r in RUNNERS], default=[r.key for r in RUNNERS])
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        metavar="RUNNER:SCENARIO",
        help="leave out these pairs (tests/bench/test_quick_run.py leaves out the slowest peers' quick runs)",
    )
    parser.add_argument("--doc", type=Path, default=None, help="where to write the report (default: docs/)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per runner and scenario")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="with --quick: run N pairs at once (tests/bench/test_quick_run.py gives 2, for CI's time); a full run"
        " measures one pair at a time, on a machine left to itself",
    )
    parser.add_argument(
        "--sleepers",
        type=int,
        default=None,
        metavar="N",
        help="Cerebelum's hibernation with N sleepers (1000000: the million of issue 21; about an hour on a"
        " 2-core machine, so give --timeout 7200 too)",
    )
    parser.add_argument(
        "--api-starts",
        type=int,
        default=None,
        metavar="K",
        help="with --sleepers on SQLite: only K of them start through the API in each wave, the rest are copies of"
        " one's store rows made while the engine is stopped (a million through the API take over two hours here)",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="measure only the chosen scenarios and runners; the report keeps the last run's other results, saying so",
    )
    args = parser.parse_args()
    doc = args.doc or (Path(tempfile.mkdtemp(prefix="bench-quick-")) / "benchmarks.md" if args.quick else None)
    doc = doc or ROOT / "docs" / "benchmarks.md"
    results = doc.parent / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    timeout_s = args.timeout or (600 if args.quick else 1500)
    if args.jobs < 1 or (args.jobs > 1 and not args.quick):
        parser.error("--jobs: 1, or more only with --quick (figures of pairs run side by side are not comparable)")
    known = {f"{runner.key}:{scenario}" for runner in RUNNERS for scenario in runner.scenarios}
    skipped = set(args.skip)
    if skipped - known:
        parser.error(f"--skip: no such runner and scenario: {', '.join(sorted(skipped - known))}")

    from tests.support.postgres import PostgresServer

    postgres = PostgresServer.start(durable=True)
    began = time.monotonic()
    pairs = [
        (runner, scenario)
        for scenario in args.scenarios
        for runner in RUNNERS
        if runner.key in args.runners and scenario in runner.scenarios and f"{runner.key}:{scenario}" not in skipped
    ]

    def measure(pair: tuple[Runner, str]) -> Result:
        runner, scenario = pair
        return run_one(
            runner,
            scenario,
            results,
            quick=args.quick,
            postgres_url=postgres.admin_url,
            timeout_s=timeout_s,
            sleepers=args.sleepers,
            api_starts=args.api_starts,
        )

    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            collected = list(pool.map(measure, pairs))  # in the pairs' order, whichever ends first
    finally:
        postgres.stop()
    command = "python bench/run.py" + (" --quick" if args.quick else "")
    kept: list[Result] = []
    if args.update:
        command += " --update --scenarios " + " ".join(args.scenarios)
        measured = {(scenario, runner.key) for runner, scenario in pairs}
        kept = [
            Result.read(results / f"{runner.key}--{scenario}.json")
            for scenario in SCENARIOS
            for runner in RUNNERS
            if scenario in runner.scenarios
            and (scenario, runner.key) not in measured
            and (results / f"{runner.key}--{scenario}.json").exists()
        ]
    ordered = sorted([*collected, *kept], key=lambda r: SCENARIOS.index(r.scenario))  # stable: runners' order
    write_report(
        ordered,
        doc,
        quick=args.quick,
        command=command,
        wall_s=time.monotonic() - began,
        updated=sorted({r.scenario for r in collected}, key=SCENARIOS.index) if args.update else None,
    )
    print(f"wrote {doc} in {time.monotonic() - began:.0f} s")
    failed = [r for r in collected if r.failed]
    for result in failed:
        print(f"FAILED: {result.system} {result.scenario}: {result.failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
