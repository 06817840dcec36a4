"""Kubernetes-mode scale-out (issue 21): the `kubernetes` scenario's shape on 1, 2 and 3 active operator replicas.

    python bench/kubernetes_scale_out.py --out result.json [--quick] [--postgres-url URL] [--replicas 1 2 3]
        [--executions E --steps S --workers W]

One control plane for the whole run, as bench/kubernetes_runner.py starts it (etcd + kube-apiserver
with an audit log, the CRDs, the Helm chart's ServiceAccount and RBAC). Then for each N, in turn:
a fresh PostgreSQL database and a fresh namespace, N `cerebelum operator --shard-group G
--advertise-address HOST:PORT` processes as that ServiceAccount with their production defaults
(N = 1 runs with --shard-group too: the same code path), and a wait until the group's 16 shard
Leases are split as expected (16; 8+8; 6+5+5). Then W no-op worker processes (the same W for
every N), each polling every replica (the list `HOST:P1,HOST:P2,...`: a poller group per replica,
what a `dns:///` name of the chart's headless Service resolves to), one Workflow of S sequential
no-op steps and E Executions of it created over 8 API connections at once, and a wait until the
API shows every Execution Succeeded.

Each N is checked (every Execution Succeeded in the API and in the store, E x S StepCompleted
events) and the run fails otherwise. Figures per N: steps/s from the engine's history (first
ExecutionStarted to last ExecutionSucceeded, read from PostgreSQL), the ratio to the first N,
wall time from the first create until the API shows every Execution Succeeded, the operators' API
writes per execution in the namespace and their shard-Lease writes per second (the audit log),
the executions each replica ran (by the shards its Leases held), and the CPU seconds each
process used (/proc: each operator replica, the workers, kube-apiserver, etcd, the PostgreSQL
server's whole process tree, this runner), also per step. Sizes are the `kubernetes` scenario's
(bench/kubernetes_runner.py's QUICK and FULL).

It is the `kubernetes-scale-out` scenario of bench/run.py (runner `cerebelum-kubernetes-scale-out-postgres`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Result  # noqa: E402
from bench.kubernetes_runner import (  # noqa: E402
    FULL,
    QUICK,
    BenchError,
    CpuMeter,
    History,
    _children_of_self,
    _Operator,
    _versions,
    control_plane,
    create_in_parallel,
    documents,
    history_of,
    install_cluster,
    new_namespace,
    running_workers,
    wait_until_succeeded,
)
from bench.scale_out import SHARDS, logged_problems, postmaster_pid, split  # noqa: E402
from tests.support.control_plane import ControlPlane  # noqa: E402
from tests.support.kube import (  # noqa: E402
    OPERATOR_NAMESPACE,
    OPERATOR_USER,
    WRITE_VERBS,
    audited_writes,
    service_account_kubeconfig,
    shard_owners,
)
from tests.support.postgres import PostgresServer  # noqa: E402

SYSTEM = "Cerebelum (Kubernetes operator)"
SCENARIO = "kubernetes-scale-out"
# How each worker reaches the replicas: the list `A,B` (a poller group per replica, as bench/scale_out.py, and
# as the SDKs poll what the chart's `dns:///` name resolves to). (A first version also measured one round-robin
# channel over all of them, which the SDKs no longer use: bench/analysis.md.)
CHANNELS = ("per-replica",)
SPLIT_TIMEOUT_S = 120.0  # the Leases of a replica that joins move when the others renew (--lease-duration 6)


@dataclass(frozen=True)
class Sizes:
    executions: int
    steps: int
    workers: int
    replicas: tuple[int, ...] = (1, 2, 3)
    channels: tuple[str, ...] = CHANNELS

    @classmethod
    def of(cls, *, quick: bool) -> Sizes:
        executions, steps, workers = QUICK if quick else FULL  # the `kubernetes` scenario's sizes
        return cls(executions, steps, workers)


# -- the replicas ------------------------------------------------------------------------------------------------
def expected_split(replicas: int) -> list[int]:
    """How many shard Leases each replica holds once balanced, largest first (16; 8, 8; 6, 5, 5)."""
    return sorted((len(shards) for shards in split(replicas)), reverse=True)


def is_split(owners: dict[str, str], identities: list[str]) -> bool:
    """Every shard Lease held, each by one of `identities`, all of them holding their even share."""
    held = Counter(owners.values())
    return (
        len(owners) == SHARDS
        and set(held) == set(identities)
        and sorted(held.values(), reverse=True) == expected_split(len(identities))
    )


@contextlib.contextmanager
def running_replicas(
    cp: ControlPlane, namespace: str, group: str, store_url: str, count: int, work_dir: Path
) -> Iterator[tuple[list[_Operator], dict[str, str]]]:
    """`count` `cerebelum operator --shard-group` replicas on one store, once the Leases are split evenly;
    with the shard Leases' holders then (Lease name -> replica identity)."""
    kubeconfig = service_account_kubeconfig(cp, work_dir / "operator.kubeconfig")
    operators: list[_Operator] = []
    for index in range(count):
        operator = _Operator(
            database_url=store_url,
            log_path=work_dir / f"operator-{index}.log",
            kubeconfig=kubeconfig,
            identity=f"replica-{index}",
            lease_namespace=OPERATOR_NAMESPACE,
        )
        operator.extra_args = (
            *("--namespace", namespace, "--shard-group", group, "--advertise-address", operator.address),
            *("--auth", "none"),
        )
        operators.append(operator)
    try:
        for operator in operators:  # all at once: the store serialises their migrations
            operator.launch()
        for operator in operators:
            operator.wait_serving()
        identities = [operator.identity for operator in operators]
        deadline = time.monotonic() + SPLIT_TIMEOUT_S
        while not is_split(owners := shard_owners(cp, group), identities):
            for operator in operators:
                if operator.process is not None and operator.process.poll() is not None:
                    raise BenchError(
                        f"{operator.identity} exited ({operator.process.returncode}):\n{operator.log_tail()}"
                    )
            if time.monotonic() > deadline:
                held = dict(Counter(owners.values()))
                raise BenchError(f"the shard Leases were not split evenly in {SPLIT_TIMEOUT_S:.0f} s: {held}")
            time.sleep(0.2)
        yield operators, owners
    finally:
        for operator in operators:
            operator.stop()


# -- the store and the audit log ---------------------------------------------------------------------------------
class StoreCounts:
    """(Succeeded, Failed or Cancelled) executions in the store so far, over one open connection
    (a connection per poll would be PostgreSQL CPU charged to the run)."""

    def __init__(self, url: str) -> None:
        self._connection = psycopg.connect(url, autocommit=True)

    def __call__(self) -> tuple[int, int]:
        try:
            found = self._connection.execute("SELECT phase, count(*) FROM executions GROUP BY phase").fetchall()
            rows: dict[str, int] = {str(phase): int(count) for phase, count in found}
        except psycopg.errors.UndefinedTable:  # not migrated yet
            return 0, 0
        return int(rows.get("Succeeded", 0)), int(rows.get("Failed", 0) + rows.get("Cancelled", 0))

    def close(self) -> None:
        self._connection.close()


def read_postgres(url: str) -> tuple[History, dict[str, int], dict[int, int]]:
    """The engine's history figures, executions per phase, and executions per shard."""
    with psycopg.connect(url) as conn:
        history = history_of(lambda query: conn.execute(query).fetchone())
        phases = {str(p): int(c) for p, c in conn.execute("SELECT phase, count(*) FROM executions GROUP BY phase")}
        shards = {int(s): int(c) for s, c in conn.execute("SELECT shard, count(*) FROM executions GROUP BY shard")}
    return history, phases, shards


def lease_writes(audit_log: Path, group: str, since: float, until: float) -> int:
    """The operators' writes to the group's Leases between two wall-clock times (renewals, moves)."""
    count = 0
    if not audit_log.exists():
        return count
    for line in audit_log.read_text().splitlines():
        entry: dict[str, Any] = json.loads(line)
        ref = entry.get("objectRef") or {}
        if (
            entry.get("stage") != "ResponseComplete"
            or entry.get("user", {}).get("username") != OPERATOR_USER
            or entry.get("verb") not in WRITE_VERBS
            or ref.get("resource") != "leases"
            or ref.get("namespace") != OPERATOR_NAMESPACE
            or not str(ref.get("name", "")).startswith(f"{group}-")
        ):
            continue
        at = datetime.fromisoformat(entry["requestReceivedTimestamp"]).timestamp()
        count += since <= at <= until
    return count


# -- one N -------------------------------------------------------------------------------------------------------
def worker_address(channel: str, addresses: list[str]) -> str:
    """What CEREBELUM_ADDRESS the workers get, by CHANNELS."""
    assert channel in CHANNELS
    return ",".join(addresses)


def one_configuration(
    cp: ControlPlane, audit_log: Path, server: PostgresServer, replicas: int, channel: str, sizes: Sizes, work: Path
) -> tuple[dict[str, Any], list[str]]:
    work_dir = work / f"n{replicas}-{channel}"
    work_dir.mkdir()
    store_url = server.create_database()
    namespace = new_namespace(cp)
    group = f"g-{namespace}"
    try:
        postmaster = postmaster_pid(store_url)
        with running_replicas(cp, namespace, group, store_url, replicas, work_dir) as (operators, owners):
            address = worker_address(channel, [operator.address for operator in operators])
            with running_workers(address, sizes.workers, work_dir) as workers:
                children = _children_of_self()
                roles: dict[str, list[int]] = {}
                for index, operator in enumerate(operators):
                    assert operator.process is not None
                    roles[f"operator {index}"] = [operator.process.pid]
                roles["workers"] = [worker.pid for worker in workers]
                roles["kube-apiserver"] = [pid for pid, comm in children.items() if comm == "kube-apiserver"]
                roles["etcd"] = [pid for pid, comm in children.items() if comm == "etcd"]
                meter = CpuMeter(roles, trees={"postgres": postmaster} if postmaster is not None else {})
                counts = StoreCounts(store_url)
                try:
                    manifests = documents(sizes.executions, sizes.steps)
                    meter.start()
                    since = time.time()
                    began = time.monotonic()
                    create_in_parallel(cp, namespace, manifests)
                    apply_s = time.monotonic() - began
                    wait_until_succeeded(cp, namespace, counts, operators, sizes.executions)
                    wall_s = time.monotonic() - began
                    meter.stop()
                    until = time.time()
                except BaseException:
                    for operator in operators:
                        print(f"--- {operator.identity} log ---\n{operator.log_tail()}", file=sys.stderr)
                    raise
                finally:
                    counts.close()
        # The operators have stopped: their last writes are in the audit log (blocking mode).
        history, phases, per_shard = read_postgres(store_url)
        writes = audited_writes(audit_log, namespace=namespace)
        leases = lease_writes(audit_log, group, since, until)
        logs = [operator.log_path for operator in operators]
        logs += [work_dir / f"worker-{index}.log" for index in range(sizes.workers)]
        problems = [line for line in logged_problems(logs) if "--auth none:" not in line]  # asked for
    finally:
        server.drop_database(store_url)
    total_steps = sizes.executions * sizes.steps
    if phases != {"Succeeded": sizes.executions}:
        raise BenchError(f"N={replicas}: the store has {phases}, not {sizes.executions} Succeeded")
    if history.steps_completed != total_steps:
        raise BenchError(f"N={replicas}: {history.steps_completed} StepCompleted events, not {total_steps}")
    ran = Counter({operator.identity: 0 for operator in operators})
    for lease, holder in owners.items():
        ran[holder] += per_shard.get(int(lease.rsplit("-", 1)[1]), 0)
    engine_s = (history.last_end_ms - history.first_start_ms) / 1000
    cpu = meter.seconds()
    total_writes = sum(writes.values())
    measured_s = max(meter.ended - meter.began, 1e-9)
    figures: dict[str, Any] = {
        "steps_per_s": round(total_steps / engine_s, 1),
        "wall_steps_per_s": round(total_steps / wall_s, 1),
        "wall_s": round(wall_s, 2),
        "engine_s": round(engine_s, 2),
        "apply_s": round(apply_s, 2),
        "mean_execution_s": round(history.running_s / sizes.executions, 2),
        "api_writes_per_execution": round(total_writes / sizes.executions, 2),
        "api_writes": total_writes,
        "status_writes": writes["patch executions/status"],
        "object_patches": writes["patch executions"],
        "events_written": writes["create events"],
        "lease_writes": leases,
        "lease_writes_per_s": round(leases / measured_s, 1),
        "shards": [Counter(owners.values())[operator.identity] for operator in operators],
        "executions_run": [ran[operator.identity] for operator in operators],
        "cpu_s": {role: round(seconds, 2) for role, seconds in cpu.items()},
        "cpu_ms_per_step": {role: round(seconds * 1000 / total_steps, 3) for role, seconds in cpu.items()},
        "cpu_ms_per_step_total": round(sum(v for k, v in cpu.items() if k != "other") * 1000 / total_steps, 3),
        "machine_busy_pct": round(meter.machine_busy_pct(), 1),
    }
    return figures, problems


def scale_out(sizes: Sizes, server: PostgresServer, work: Path) -> tuple[dict[str, Any], str, str]:
    audit_dir = work / "audit"
    per: dict[str, dict[str, Any]] = {str(n): {} for n in sizes.replicas}
    problems: list[str] = []
    with control_plane(audit_dir, work) as cp:
        install_cluster(cp)
        for replicas in sizes.replicas:
            for channel in sizes.channels:
                began = time.monotonic()
                measured, logged = one_configuration(
                    cp, audit_dir / "audit.log", server, replicas, channel, sizes, work
                )
                per[str(replicas)][channel] = measured
                problems += logged
                print(
                    f"N={replicas} {channel}: {measured['steps_per_s']:.0f} steps/s,"
                    f" {measured['api_writes_per_execution']} API writes per execution;"
                    f" {time.monotonic() - began:.0f} s",
                    flush=True,
                )
        version = _versions(cp)
    figures: dict[str, Any] = {
        "executions": sizes.executions,
        "steps": sizes.steps,
        "workers": sizes.workers,
        "replicas": list(sizes.replicas),
        "channels": list(sizes.channels),
    }
    for index, channel in enumerate(sizes.channels):
        base = per[str(sizes.replicas[0])][channel]["steps_per_s"]
        prefix = "" if index == 0 else f"{channel.replace('-', '_')}_"  # the first channel's are the headline
        for n in sizes.replicas:
            one = per[str(n)][channel]
            one["ratio"] = round(one["steps_per_s"] / base, 2)
            figures[f"n{n}_{prefix}steps_per_s"] = one["steps_per_s"]
            figures[f"n{n}_{prefix}ratio"] = one["ratio"]
            figures[f"n{n}_{prefix}wall_s"] = one["wall_s"]
            figures[f"n{n}_{prefix}api_writes_per_execution"] = one["api_writes_per_execution"]
            figures[f"n{n}_{prefix}cpu_ms_per_step"] = one["cpu_ms_per_step_total"]
    figures["per_replicas"] = per
    figures["logged_problems"] = len(problems)
    for line in dict.fromkeys(problems):
        print(f"logged: {line}", flush=True)
    notes = (
        f"{sizes.executions} Executions x {sizes.steps} no-op steps created over 8 API connections at once on a"
        f" local kube-apiserver (etcd without fsync), for N = {', '.join(map(str, sizes.replicas))} active"
        " `cerebelum operator --shard-group` replicas on a fresh PostgreSQL database each (fsync on), the 16 shard"
        f" Leases split evenly, {sizes.workers} worker processes each polling every replica"
        " (the list `A,B,...`: a group of pollers per replica); one control plane for"
        " every N (a fresh namespace and shard group each, in this order). steps/s"
        " from the engine's history, wall until the API shows every Execution Succeeded; API writes of"
        f" {OPERATOR_USER} in the namespace, and its shard-Lease writes during the run, from the audit log. CPU per"
        f" process from /proc. Everything shares this machine's {os.cpu_count()} cores: the ratio measures what"
        f" scaling out costs here, not added capacity; {len(problems)} warning/error lines in the operators' logs."
    )
    return figures, notes, version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=(SCENARIO,), default=SCENARIO)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="the kubernetes scenario's quick size (20 x 3, 2 workers)")
    parser.add_argument("--store", choices=("postgres",), default="postgres")
    parser.add_argument("--postgres-url", default=None, help="a superuser URL (default: start a durable server)")
    parser.add_argument("--executions", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="steps per execution (at most 200)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes, the same for every N")
    parser.add_argument("--replicas", type=int, nargs="+", default=None, help="the Ns to measure (default 1 2 3)")
    parser.add_argument(
        "--channels",
        nargs="+",
        choices=CHANNELS,
        default=None,
        help="how workers reach the replicas, each measured for every N (the first is the headline)",
    )
    args = parser.parse_args(argv)
    sizes = Sizes.of(quick=args.quick)
    changes = {
        "executions": args.executions,
        "steps": args.steps,
        "workers": args.workers,
        "replicas": tuple(args.replicas) if args.replicas else None,
        "channels": tuple(dict.fromkeys(args.channels)) if args.channels else None,
    }
    sizes = replace(sizes, **{key: value for key, value in changes.items() if value is not None})
    if any(not 1 <= n <= SHARDS for n in sizes.replicas):
        parser.error(f"--replicas: between 1 and {SHARDS}")
    if not 1 <= sizes.steps <= 200:
        parser.error("--steps must be between 1 and 200 (noop_worker.py serves s1..s200)")
    if sizes.executions < 1 or sizes.workers < 1:
        parser.error("--executions and --workers must be positive")

    def _terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # unwind, so every context manager stops its processes

    signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="cerebelum-bench-kube-scale-"))
    # Every process of the run has work in its command line or its files (as the kubernetes runner's).
    print(f"kubernetes scale-out: work dir {work}", file=sys.stderr, flush=True)
    server = PostgresServer.external(args.postgres_url) if args.postgres_url else PostgresServer.start(durable=True)
    try:
        figures, notes, version = scale_out(sizes, server, work)
    except subprocess.CalledProcessError as error:  # a kubectl call in the set-up
        print(f"kubernetes scale-out: {' '.join(map(str, error.cmd))} failed:\n{error.stderr}", file=sys.stderr)
        return 1
    except RuntimeError as error:  # BenchError, ControlPlaneError, or helm that could not be built
        print(f"kubernetes scale-out: {error}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Result(SYSTEM, version, "PostgreSQL (fsync on)", SCENARIO, figures, notes).write(args.out)
    print(json.dumps({"steps_per_s": {n: figures[f"n{n}_steps_per_s"] for n in sizes.replicas}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
