"""Scale-out on PostgreSQL (issue 21): the throughput shape on 1, 2 and 3 engine replicas sharing one store.

For each N, on a fresh database: N `cerebelum dev --shards ... --replica rI` engines, the store's 16
shards split evenly between them (16; 8+8; 6+5+5), and the same worker processes whatever N (2 by
default), each running one `Worker` per replica (bench/scale_out_worker.py: a worker reaches one
engine per `Worker` today), with the same concurrency in total. Then:

1. *direct*: E executions of S no-op steps started by 64 concurrent clients, round-robin over the
   replicas, without ids: each is placed in a shard of the replica that received it, so nothing is
   forwarded (checked from the store: every execution's shard belongs to the replica it was started
   on); each is awaited through that replica.
2. *forwarded*: the same shape, every start and wait sent to replica 0 with an explicit id, so
   about (N-1)/N of them are for another replica's shard and forwarded to its owner.

Each run is checked from the store (every execution Succeeded, none more) and fails loudly
otherwise. Figures: steps/s between the first ExecutionStarted and the last ExecutionSucceeded in
the history, the ratio to N=1, wall time, and the CPU seconds each process used during the run
(/proc: each engine, each worker, the PostgreSQL server's whole process tree, the clients' process),
also per step, so a reader can model a machine with more cores. The configurations alternate over
rounds (1, 2, 3, 1, 2, 3, ...) so that a shared machine's load falls on all alike; medians.

    python bench/scale_out.py --out /tmp/scale-out.json [--quick] [--postgres-url URL] [--replicas 1 2 3]

It is also the `scale-out` scenario of bench/run.py (runner `cerebelum-scale-out-postgres`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.common import Result, process_tree_cpu_s  # noqa: E402
from cerebelum import AsyncClient, Client  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

SYSTEM = "Cerebelum"
SCENARIO = "scale-out"
SHARDS = 16  # the store's shard count (model.shards.DEFAULT_SHARDS)
START_CONCURRENCY = 64  # concurrent clients starting executions, as the throughput scenario's
_LOGGED = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")


@dataclass(frozen=True)
class Sizes:
    executions: int  # per run
    steps: int
    worker_processes: int
    rounds: int
    replicas: tuple[int, ...] = (1, 2, 3)
    probes: int = 40  # sequential starts and reads through replica 0 on the idle cluster (the hop's latency)
    concurrency: int = 200  # each worker process's step slots, split over the replicas it polls

    @classmethod
    def of(cls, *, quick: bool) -> Sizes:
        return cls(20, 3, 2, 1, probes=10) if quick else cls(200, 10, 2, 3)


def split(replicas: int, shards: int = SHARDS) -> list[range]:
    """The shards of each replica: contiguous and as even as can be (16 over 3: 6, 5, 5)."""
    size, extra = divmod(shards, replicas)
    ranges, first = [], 0
    for index in range(replicas):
        count = size + (1 if index < extra else 0)
        ranges.append(range(first, first + count))
        first += count
    return ranges


# -- the processes --------------------------------------------------------------------------------------------
@dataclass
class Replica:
    """One `cerebelum dev --shards` engine."""

    name: str
    shards: range
    log: Path
    address: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    process: subprocess.Popen[bytes] | None = None

    def launch(self, store_url: str) -> None:
        command = [sys.executable, "-m", "cerebelum_operator.cli", "dev", "--address", self.address]
        command += ["--db", store_url, "--ui-address", "off", "--log-level", "warning"]
        command += ["--shards", f"{self.shards.start}-{self.shards.stop - 1}", "--replica", self.name]
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


@dataclass
class Cluster:
    replicas: list[Replica]
    workers: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def processes(self) -> dict[str, int]:
        named = {f"engine {i}": r.pid for i, r in enumerate(self.replicas)}
        return named | {f"worker {i}": w.pid for i, w in enumerate(self.workers)}


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def cluster(store_url: str, replicas: int, sizes: Sizes, work: Path, tag: str) -> Iterator[Cluster]:
    """N engines on one store (started at once: the store serialises their migrations) and the workers."""
    engines = [Replica(f"r{i}", shards, work / f"{tag}-engine-{i}.log") for i, shards in enumerate(split(replicas))]
    workers: list[subprocess.Popen[bytes]] = []
    logs = [engine.log for engine in engines]
    try:
        for engine in engines:
            engine.launch(store_url)
        for engine in engines:
            assert engine.process is not None
            channel = grpc.insecure_channel(engine.address)
            try:
                grpc.channel_ready_future(channel).result(timeout=120)
            except grpc.FutureTimeoutError:
                raise RuntimeError(f"engine {engine.name} did not serve: {_tail(engine.log)}") from None
            finally:
                channel.close()
            if engine.process.poll() is not None:
                raise RuntimeError(f"engine {engine.name} exited: {_tail(engine.log)}")
        env = {
            **os.environ,
            "CEREBELUM_ADDRESSES": ",".join(engine.address for engine in engines),
            "BENCH_CONCURRENCY": str(sizes.concurrency),
        }
        for index in range(sizes.worker_processes):
            log = work / f"{tag}-worker-{index}.log"
            logs.append(log)
            with log.open("ab") as output:
                workers.append(
                    subprocess.Popen(
                        [sys.executable, str(HERE / "scale_out_worker.py")], env=env, stdout=output, stderr=output
                    )
                )
        yield Cluster(engines, workers, logs)
    finally:
        for worker in workers:  # first, so that no worker is left polling a stopped engine
            _stop(worker)
        for engine in engines:
            if engine.process is not None:
                _stop(engine.process)


def _tail(log: Path) -> str:
    return " / ".join(log.read_text(errors="replace").strip().splitlines()[-5:])


def logged_problems(logs: list[Path]) -> list[str]:
    """Warning, error and traceback lines the processes wrote, each with its log's name."""
    found = []
    for log in logs:
        if log.exists():
            found += [
                f"{log.name}: {line}" for line in log.read_text(errors="replace").splitlines() if _LOGGED.search(line)
            ]
    return found


# -- measuring -------------------------------------------------------------------------------------------------
def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine (its backends are its children)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        try:  # while the backend lives: once the connection closes it exits, and its /proc entry with it
            stat = Path(f"/proc/{int(row[0])}/stat").read_text()
        except FileNotFoundError:
            return None  # a server elsewhere: its CPU is not ours to read
    return int(stat.rsplit(")", 1)[1].split()[1])


def cpu_snapshot(processes: dict[str, int], postmaster: int | None) -> dict[str, float]:
    """CPU seconds used so far by each process (its whole tree), PostgreSQL's server and this driver."""
    snapshot = {name: process_tree_cpu_s(pid) for name, pid in processes.items()}
    if postmaster is not None:
        snapshot["postgres"] = process_tree_cpu_s(postmaster)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    snapshot["clients"] = usage.ru_utime + usage.ru_stime
    return snapshot


@dataclass
class Run:
    steps_per_s: float
    wall_s: float
    cpu_s: dict[str, float]
    forwarded: int
    start_p50_local_ms: float | None
    start_p50_forwarded_ms: float | None


async def _drive(cluster: Cluster, workflow: str, executions: int, *, forward: bool) -> list[tuple[str, int, float]]:
    """Start the executions and wait for each; (id, index of the replica called, start latency s)."""
    clients = [AsyncClient(address=replica.address) for replica in cluster.replicas]
    try:
        gate = asyncio.Semaphore(START_CONCURRENCY)

        async def start(index: int) -> tuple[str, int, float]:
            via = 0 if forward else index % len(clients)
            async with gate:
                began = time.perf_counter()
                if forward:
                    started = await clients[via].start(workflow, {}, execution_id=f"{workflow}-{index}")
                else:
                    started = await clients[via].start(workflow, {})
                return started.id, via, time.perf_counter() - began

        started = await asyncio.gather(*(start(i) for i in range(executions)))
        waits = asyncio.Semaphore(256)

        async def wait(execution_id: str, via: int) -> str:
            async with waits:
                return (await clients[via].wait(execution_id, timeout=600)).phase

        phases = await asyncio.gather(*(wait(execution_id, via) for execution_id, via, _ in started))
        if set(phases) != {"Succeeded"}:
            raise RuntimeError(f"{workflow}: not every execution succeeded: {sorted(set(phases))}")
        return list(started)
    finally:
        for client in clients:
            await client.close()


def measure(
    cluster: Cluster, store_url: str, postmaster: int | None, workflow: str, sizes: Sizes, *, forward: bool
) -> Run:
    """One run of the throughput shape, checked from the store."""
    processes = cluster.processes()
    before = cpu_snapshot(processes, postmaster)
    began = time.monotonic()
    started = asyncio.run(_drive(cluster, workflow, sizes.executions, forward=forward))
    wall_s = time.monotonic() - began
    after = cpu_snapshot(processes, postmaster)
    with psycopg.connect(store_url) as conn:
        counted = conn.execute("SELECT phase, count(*) FROM executions WHERE workflow = %s GROUP BY phase", (workflow,))
        phases: dict[str, int] = dict(counted.fetchall())
        placed = conn.execute("SELECT execution_id, shard FROM executions WHERE workflow = %s", (workflow,))
        shards: dict[str, int] = dict(placed.fetchall())
        first, last = conn.execute(
            "SELECT min(e.at_ms) FILTER (WHERE e.kind = 'ExecutionStarted'),"
            " max(e.at_ms) FILTER (WHERE e.kind = 'ExecutionSucceeded')"
            " FROM events e JOIN executions x ON x.execution_id = e.execution_id WHERE x.workflow = %s",
            (workflow,),
        ).fetchone() or (None, None)
    if phases != {"Succeeded": sizes.executions}:
        raise RuntimeError(f"{workflow}: the store has {phases}, not {sizes.executions} Succeeded")
    owner = {shard: index for index, replica in enumerate(cluster.replicas) for shard in replica.shards}
    misplaced = [i for i, via, _ in started if not forward and owner[shards[i]] != via]
    if misplaced:
        raise RuntimeError(f"{workflow}: {len(misplaced)} executions started without an id left their replica")
    local = [latency * 1000 for i, _, latency in started if owner[shards[i]] == 0]
    remote = [latency * 1000 for i, _, latency in started if owner[shards[i]] != 0]
    total_steps = sizes.executions * sizes.steps
    return Run(
        steps_per_s=total_steps / ((int(last) - int(first)) / 1000),
        wall_s=wall_s,
        cpu_s={name: after[name] - before[name] for name in after},
        forwarded=len(remote) if forward else 0,
        start_p50_local_ms=statistics.median(local) if local else None,
        start_p50_forwarded_ms=statistics.median(remote) if forward and remote else None,
    )


def one_configuration(
    server: PostgresServer, replicas: int, sizes: Sizes, work: Path, round_: int
) -> tuple[Run, Run, dict[str, list[float]], list[str]]:
    store_url = server.create_database()
    try:
        postmaster = postmaster_pid(store_url)
        with cluster(store_url, replicas, sizes, work, f"round{round_}-n{replicas}") as running:
            timeline = [f"s{i}" for i in range(1, sizes.steps + 1)]
            with Client(address=running.replicas[0].address) as client:
                for name in ("direct", "forward"):
                    client.apply_workflow(name, {"taskQueue": "bench", "timeline": timeline})
            warm_up_each(running)
            hop = probe_hop(running, store_url, sizes.probes)
            direct = measure(running, store_url, postmaster, "direct", sizes, forward=False)
            forward = measure(running, store_url, postmaster, "forward", sizes, forward=True)
        return direct, forward, hop, logged_problems(running.logs)
    finally:
        server.drop_database(store_url)


def probe_hop(cluster: Cluster, store_url: str, count: int) -> dict[str, list[float]]:
    """What a hop costs on an idle cluster: one start and one read at a time through replica 0, with ids;
    each start's and read's latency in ms, by whether its shard is replica 0's ("local") or not ("forwarded")."""
    timed: list[tuple[str, float, float]] = []
    with Client(address=cluster.replicas[0].address) as client:
        for index in range(count):
            began = time.perf_counter()
            execution_id = client.start("warm", {}, execution_id=f"probe-{index}").id
            started = time.perf_counter()
            final = client.wait(execution_id, timeout=120)
            if final.phase != "Succeeded":
                raise RuntimeError(f"probe {execution_id}: {final.phase} {final.error}")
            read = time.perf_counter()
            client.get(execution_id)
            timed.append((execution_id, (started - began) * 1000, (time.perf_counter() - read) * 1000))
    with psycopg.connect(store_url) as conn:
        placed = conn.execute("SELECT execution_id, shard FROM executions WHERE execution_id LIKE 'probe-%'")
        shards: dict[str, int] = dict(placed.fetchall())
    local = set(cluster.replicas[0].shards)
    found: dict[str, list[float]] = {"start_local": [], "start_forwarded": [], "get_local": [], "get_forwarded": []}
    for execution_id, start_ms, get_ms in timed:
        where = "local" if shards[execution_id] in local else "forwarded"
        found[f"start_{where}"].append(start_ms)
        found[f"get_{where}"].append(get_ms)
    return found


def warm_up_each(cluster: Cluster) -> None:
    """A few executions through each replica, so that every worker polls every replica before timing."""
    with Client(address=cluster.replicas[0].address) as client:
        client.apply_workflow("warm", {"taskQueue": "bench", "timeline": ["s1"]})
    for replica in cluster.replicas:
        with Client(address=replica.address) as client:
            for _ in range(4):
                final = client.wait(client.start("warm", {}).id, timeout=120)
                if final.phase != "Succeeded":
                    raise RuntimeError(f"warm-up on {replica.name}: {final.phase} {final.error}")


# -- the figures -----------------------------------------------------------------------------------------------
def _summary(runs: list[Run], sizes: Sizes) -> dict[str, Any]:
    steps = sizes.executions * sizes.steps * len(runs)
    names = list(runs[0].cpu_s)
    cpu_s = {name: sum(run.cpu_s[name] for run in runs) / len(runs) for name in names}
    summary: dict[str, Any] = {
        "steps_per_s": round(statistics.median(run.steps_per_s for run in runs), 1),
        "steps_per_s_rounds": [round(run.steps_per_s, 1) for run in runs],
        "wall_s": round(statistics.median(run.wall_s for run in runs), 2),
        "cpu_s": {name: round(value, 2) for name, value in cpu_s.items()},
        "cpu_ms_per_step": {name: round(sum(run.cpu_s[name] for run in runs) * 1000 / steps, 3) for name in names},
        "cpu_ms_per_step_total": round(sum(sum(run.cpu_s.values()) for run in runs) * 1000 / steps, 3),
    }
    local = [run.start_p50_local_ms for run in runs if run.start_p50_local_ms is not None]
    remote = [run.start_p50_forwarded_ms for run in runs if run.start_p50_forwarded_ms is not None]
    summary["start_p50_local_ms"] = round(statistics.median(local), 2) if local else None
    summary["start_p50_forwarded_ms"] = round(statistics.median(remote), 2) if remote else None
    summary["forwarded"] = round(statistics.fmean(run.forwarded for run in runs), 1)
    return summary


def scale_out(server: PostgresServer, sizes: Sizes, work: Path) -> tuple[dict[str, Any], str]:
    direct: dict[int, list[Run]] = {n: [] for n in sizes.replicas}
    forward: dict[int, list[Run]] = {n: [] for n in sizes.replicas}
    hops: dict[int, dict[str, list[float]]] = {n: {} for n in sizes.replicas}
    problems: list[str] = []
    for round_ in range(sizes.rounds):
        for replicas in sizes.replicas:
            began = time.monotonic()
            plain, hopped, hop, logged = one_configuration(server, replicas, sizes, work, round_)
            for key, values in hop.items():
                hops[replicas].setdefault(key, []).extend(values)
            direct[replicas].append(plain)
            forward[replicas].append(hopped)
            problems += logged
            print(
                f"round {round_} N={replicas}: {plain.steps_per_s:.0f} steps/s direct, {hopped.steps_per_s:.0f}"
                f" forwarded ({hopped.forwarded} of {sizes.executions} starts forwarded);"
                f" {time.monotonic() - began:.0f} s",
                flush=True,
            )
    base = statistics.median(run.steps_per_s for run in direct[sizes.replicas[0]])
    per: dict[str, Any] = {}
    figures: dict[str, Any] = {
        "executions": sizes.executions,
        "steps": sizes.steps,
        "worker_processes": sizes.worker_processes,
        "rounds": sizes.rounds,
        "replicas": list(sizes.replicas),
    }
    for n in sizes.replicas:
        one, two = _summary(direct[n], sizes), _summary(forward[n], sizes)
        one["ratio"] = round(one["steps_per_s"] / base, 2)
        two["cost_pct"] = round(100 * (1 - two["steps_per_s"] / one["steps_per_s"]), 1)
        # The whole cluster's extra CPU in the forwarded run, per execution forwarded (its start and its wait).
        extra_s = sum(sum(r.cpu_s.values()) for r in forward[n]) - sum(sum(r.cpu_s.values()) for r in direct[n])
        moved = sum(r.forwarded for r in forward[n])
        two["extra_cpu_ms_per_forwarded"] = round(extra_s * 1000 / moved, 2) if moved else None
        idle: dict[str, Any] = {key: round(statistics.median(values), 2) for key, values in hops[n].items() if values}
        for key in ("start_local", "start_forwarded", "get_local", "get_forwarded"):
            idle.setdefault(key, None)
        idle["probes"] = sum(len(values) for key, values in hops[n].items() if key.startswith("start"))
        per[str(n)] = {"direct": one, "forwarded": two, "idle_hop_p50_ms": idle, "shards": [len(r) for r in split(n)]}
        figures[f"n{n}_steps_per_s"] = one["steps_per_s"]
        figures[f"n{n}_ratio"] = one["ratio"]
        figures[f"n{n}_forwarded_steps_per_s"] = two["steps_per_s"]
        figures[f"n{n}_cpu_ms_per_step"] = one["cpu_ms_per_step_total"]
    figures["per_replicas"] = per
    figures["logged_problems"] = len(problems)
    for line in dict.fromkeys(problems):  # the runner's log keeps them, in order, once each
        print(f"logged: {line}", flush=True)
    notes = (
        f"{sizes.executions} executions x {sizes.steps} no-op steps on N engine replicas sharing one PostgreSQL"
        f" database (16 shards split evenly), {sizes.worker_processes} worker processes each polling every replica;"
        f" starts round-robin over the replicas without ids (none forwarded), then the same through replica 0 with"
        f" ids (about (N-1)/N forwarded); medians of {sizes.rounds} alternating round(s). All on this machine's"
        f" {os.cpu_count()} cores: the replicas, workers and PostgreSQL share them, so the ratio measures the"
        " overhead and contention of scaling out, not added capacity; CPU ms per step per process are for modelling"
        f" more cores; {len(problems)} warning/error lines in the engines' and workers' logs"
    )
    return figures, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=(SCENARIO,), default=SCENARIO)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="20 executions x 3 steps, one round")
    parser.add_argument("--store", choices=("postgres",), default="postgres")
    parser.add_argument("--postgres-url", default=None, help="a superuser URL (default: start a durable server)")
    parser.add_argument("--size", type=int, default=None, help="executions per run")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (each polls every replica)")
    parser.add_argument("--probes", type=int, default=None, help="sequential starts timing the hop on the idle cluster")
    parser.add_argument("--replicas", type=int, nargs="+", default=None, help="the Ns to measure (default 1 2 3)")
    args = parser.parse_args()
    sizes = Sizes.of(quick=args.quick)
    changes = {
        "executions": args.size,
        "steps": args.steps,
        "rounds": args.rounds,
        "worker_processes": args.workers,
        "probes": args.probes,
        "replicas": tuple(args.replicas) if args.replicas else None,
    }
    sizes = replace(sizes, **{key: value for key, value in changes.items() if value is not None})
    if any(not 1 <= n <= SHARDS for n in sizes.replicas):
        parser.error(f"--replicas: between 1 and {SHARDS}")
    work = Path(tempfile.mkdtemp(prefix="cerebelum-scale-out-"))
    server = PostgresServer.external(args.postgres_url) if args.postgres_url else PostgresServer.start(durable=True)
    try:
        figures, notes = scale_out(server, sizes, work)
    finally:
        server.stop()
    Result(SYSTEM, _version(), "PostgreSQL (fsync on)", SCENARIO, figures, notes).write(args.out)
    return 0


def _version() -> str:
    from importlib.metadata import version

    return f"cerebelum-operator {version('cerebelum-operator')}"


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a timeout's SIGTERM still stops the processes
    raise SystemExit(main())
