"""DBOS Transact as a benchmark peer: the scenarios of bench/README.md on DBOS, written as its result JSON.

    python bench/peers/dbos_peer.py --scenario latency --out r.json [--quick] [--store sqlite|postgres]
                                    [--postgres-url URL] [--executions N]

The script is two programs in one file. Run as above it is the *runner*: it provides the store (a temp
SQLite file, or a fresh database on a PostgreSQL server it starts with fsync on, or on ``--postgres-url``,
which must allow CREATE DATABASE), spawns the DBOS application as child processes, reads DBOS's own
system database for the durable figures and writes the contract's JSON. Run with ``--child ROLE`` it is
the *DBOS application* (workflows and no-op steps below). The application runs in children so that
its resident memory can be measured alone, so that it can be SIGKILLed and restarted, and so that the
runner never holds DBOS state; children die with the runner (PR_SET_PDEATHSIG) and leave nothing behind.

DBOS is a library: steps run inside the application process, with no network hop between the engine
and the step code, only a write to the system database per step. That is the fair comparison for a
"no-op step", and every result's notes say so.

Hibernating and recovering workflows are ``async`` DBOS workflows: a sleeping async workflow is an
asyncio task, while a sleeping sync workflow holds an OS thread until it wakes (DBOS runs each sync
workflow in a thread of an unbounded pool), and this machine caps threads per process far below the
README's 100,000 (``/proc/sys/kernel/pid_max`` and ``vm.max_map_count``). ``--executions`` overrides N
for ``hibernation`` and ``recovery``; the full default is what this machine creates in a few minutes
(DBOS starts roughly 60-150 workflows/s here, its Python process being the bottleneck).

What DBOS records, and so what the figures rest on: ``operation_outputs`` has each step's
``completed_at_epoch_ms`` from Python's clock, in whole milliseconds; ``workflow_status`` times come
from the database's clock, which on SQLite under Python < 3.12 DBOS reads in whole seconds, so on
SQLite the first start is the creating process's clock instead (see ``Records.first_created_ms``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.metadata
import itertools
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSClient, DBOSConfig, EnqueueOptions, SetWorkflowID

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("latency", "throughput", "fanout", "map", "hibernation", "recovery", "kubernetes")
NO_KUBERNETES = "DBOS Transact is a library inside the application's processes; it has no Kubernetes operator"
APP_NAME = "cerebelum_bench"
APP_VERSION = "bench-1"  # fixed, so a restarted process recovers what its predecessor left, whatever the code hash
QUEUE_NAME = "bench"
ONE_DAY_S = 86_400.0
SEQUENTIAL = "bench_sequential"  # registered workflow names, which the DBOS client enqueues by
STEP = "bench_step"
ASYNC_STEP = "bench_async_step"
AFTER_SLEEP_STEP = "bench_after_sleep"
ITEMS_STEP = "bench_items"  # the map scenario's list step
ITEM_STEP = "bench_item"  # the map scenario's per-item step
SLEEP_RECORD = "DBOS.sleep"  # operation_outputs.function_name of a durable sleep's checkpoint
LATENCY_WORKFLOW_ID = "latency-measured"
FANOUT_WORKFLOW_ID = "fanout-measured"
MAP_WORKFLOW_ID = "map-measured"
CREATION_CONCURRENCY = 64  # start requests in flight while creating sleepers; more only queues on the pool
SLOW_POLL_S = 1.0  # how often the runner looks while thousands of workflows are being created or woken
EXECUTOR_THREADS = 64  # DBOS's thread pool (unbounded by default) for processes holding thousands of async workflows
HIBERNATION_FULL = 10_000
RECOVERY_FULL = 10_000
CALIBRATION_EXECUTIONS = 1_000  # sleepers created to measure the creation rate T is chosen from
RECOVERY_MARGIN = 2.0  # T allows this many times the calibrated creation time (SQLite slows as tables grow)

# --------------------------------------------------------------------------------------------------
# The DBOS application: what the child processes run
# --------------------------------------------------------------------------------------------------

_step_marks: list[float] = []  # perf_counter at each step body, for the in-process latency figure


@DBOS.step(name=STEP)
def noop_step() -> None:
    """A no-op step; DBOS still checkpoints its (empty) output to the system database."""
    _step_marks.append(time.perf_counter())


@DBOS.workflow(name=SEQUENTIAL)
def sequential(steps: int) -> int:
    """`steps` no-op steps one after another (latency, throughput)."""
    for _ in range(steps):
        noop_step()
    return steps


@DBOS.step(name=ASYNC_STEP)
async def noop_async_step() -> None:
    """The async no-op step: parallel groups and sleepers are async workflows."""


@DBOS.step(name=AFTER_SLEEP_STEP)
async def after_sleep_step() -> None:
    """The no-op step run after a sleep; its durable completion time is when the workflow woke."""


@DBOS.workflow(name="bench_fan")
async def fan(width: int) -> int:
    """One execution with a parallel group of `width` steps, as DBOS recommends: tasks started in order, gathered."""
    tasks = [asyncio.create_task(noop_async_step()) for _ in range(width)]
    await asyncio.gather(*tasks)
    return width


@DBOS.step(name=ITEMS_STEP)
async def make_items(count: int) -> list[int]:
    """The map scenario's first step: the list of items, known only once it ran."""
    return list(range(count))


@DBOS.step(name=ITEM_STEP)
async def item_step(item: int) -> int:
    """The map scenario's per-item no-op step: it returns its item."""
    return item


@DBOS.workflow(name="bench_map")
async def fan_map(count: int) -> int:
    """A step returning `count` items, then one step per item, started as tasks in order and gathered."""
    items = await make_items(count)
    tasks = [asyncio.create_task(item_step(item)) for item in items]
    outputs = await asyncio.gather(*tasks)
    return len(outputs)


@DBOS.workflow(name="bench_sleeper")
async def sleeper(until: float) -> None:
    """One step, a durable sleep until `until` (epoch s; 0 means one day), then one step.

    The wake time is computed once: DBOS records the sleep's end before sleeping and replays it on recovery.
    The duration stays positive because DBOS.sleep of <= 0 s records nothing, so a replay after `until`
    would skip a checkpoint the first run made, and DBOS would fail the workflow as non-deterministic.
    """
    await noop_async_step()
    seconds = ONE_DAY_S if until <= 0 else max(0.001, until - time.time())
    await DBOS.sleep_async(seconds)
    await after_sleep_step()


def _launch(url: str, *, executor_id: str | None = None, max_threads: int | None = None) -> None:
    config: DBOSConfig = {
        "name": APP_NAME,
        "system_database_url": url,
        "application_version": APP_VERSION,
        "log_level": "WARNING",
    }
    if executor_id is not None:
        config["executor_id"] = executor_id
    if max_threads is not None:
        config["max_executor_threads"] = max_threads
    DBOS(config=config)
    DBOS.launch()


def _write_json(path: str, payload: dict[str, Any]) -> None:
    """Write atomically: the runner polls for the file and must never read half of it."""
    partial = f"{path}.partial"
    Path(partial).write_text(json.dumps(payload))
    os.replace(partial, path)


def _wait_for_sigterm() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def _exit_now() -> None:
    """Leave like a crash would: the state is in the database, and a graceful DBOS shutdown with
    thousands of sleeping tasks only adds minutes and cancellation warnings."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def child_latency(args: argparse.Namespace) -> None:
    _launch(args.url)
    sequential(min(args.n, 20))  # warm-up: connections, statement caches, code paths
    _step_marks.clear()
    with SetWorkflowID(LATENCY_WORKFLOW_ID):
        sequential(args.n)
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(_step_marks)]
    _write_json(args.result, {"inprocess_ms": gaps})
    DBOS.destroy()


def child_worker(args: argparse.Namespace) -> None:
    _launch(args.url, executor_id=f"worker-{args.index}")
    DBOS.register_queue(QUEUE_NAME, worker_concurrency=args.concurrency, polling_interval_sec=args.poll)
    while not any(t.name == f"queue-worker-{QUEUE_NAME}" for t in threading.enumerate()):
        time.sleep(0.05)  # DBOS notices a queue registered after launch within a second
    _write_json(args.result, {"ready": time.time()})
    _wait_for_sigterm()
    DBOS.destroy()


def child_driver(args: argparse.Namespace) -> None:
    """Enqueue the throughput executions from outside the application, as a DBOS client does."""
    client = DBOSClient(system_database_url=args.url, application_name=APP_NAME)
    options: EnqueueOptions = {"workflow_name": SEQUENTIAL, "queue_name": QUEUE_NAME}
    began = time.time()
    for _ in range(args.n):
        client.enqueue(options, args.steps)
    _write_json(args.result, {"began": began, "enqueued": time.time()})
    client.destroy()


def child_fanout(args: argparse.Namespace) -> None:
    _launch(args.url)

    async def measure() -> float:
        await (await DBOS.start_workflow_async(fan, min(args.n, 10))).get_result()  # warm-up
        began = time.perf_counter()
        with SetWorkflowID(FANOUT_WORKFLOW_ID):
            handle = await DBOS.start_workflow_async(fan, args.n)
        await handle.get_result()
        return (time.perf_counter() - began) * 1000

    wall_ms = asyncio.run(measure())
    _write_json(args.result, {"wall_ms": wall_ms})
    DBOS.destroy()


def child_map(args: argparse.Namespace) -> None:
    _launch(args.url)

    async def measure() -> float:
        await (await DBOS.start_workflow_async(fan_map, min(args.n, 10))).get_result()  # warm-up
        began = time.perf_counter()
        with SetWorkflowID(MAP_WORKFLOW_ID):
            handle = await DBOS.start_workflow_async(fan_map, args.n)
        ran = await handle.get_result()
        wall_ms = (time.perf_counter() - began) * 1000
        if ran != args.n:
            raise RuntimeError(f"the map workflow gathered {ran} items, not {args.n}")
        return wall_ms

    wall_ms = asyncio.run(measure())
    _write_json(args.result, {"wall_ms": wall_ms})
    DBOS.destroy()


def child_sleepers(args: argparse.Namespace) -> None:
    """Start N sleepers (bounded start requests in flight), report, then keep them asleep until SIGTERM."""
    # Bounded: every async DB call goes through DBOS's thread pool, which is otherwise unbounded and
    # would start a thread per waiting call when thousands of sleepers wake at one instant.
    _launch(args.url, max_threads=args.threads)
    idle_rss_mb = tree_rss_mb(os.getpid())

    async def create() -> None:
        gate = asyncio.Semaphore(args.concurrency)

        async def start_one() -> None:
            async with gate:
                await DBOS.start_workflow_async(sleeper, args.until)

        began = time.time()
        await asyncio.gather(*(start_one() for _ in range(args.n)))
        _write_json(args.result, {"began": began, "started": time.time(), "idle_rss_mb": idle_rss_mb})
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        _exit_now()

    asyncio.run(create())


def child_serve(args: argparse.Namespace) -> None:
    """A fresh process on an existing database: DBOS.launch() recovers what is pending; then it serves."""
    _launch(args.url, max_threads=args.threads)
    _write_json(args.result, {"launched": time.time()})
    _wait_for_sigterm()
    _exit_now()


CHILDREN: dict[str, Callable[[argparse.Namespace], None]] = {
    "latency": child_latency,
    "worker": child_worker,
    "driver": child_driver,
    "fanout": child_fanout,
    "map": child_map,
    "sleepers": child_sleepers,
    "serve": child_serve,
}

# --------------------------------------------------------------------------------------------------
# The runner: stores, child processes, durable records, figures
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    quick: bool
    latency_steps: int
    throughput_executions: int
    throughput_steps: int
    throughput_workers: int
    fanout_steps: int
    map_items: int
    hibernation_executions: int
    recovery_executions: int


FULL = Sizes(False, 200, 200, 10, 4, 100, 1_000, HIBERNATION_FULL, RECOVERY_FULL)
QUICK = Sizes(True, 20, 20, 3, 2, 10, 20, 200, 100)


@dataclass
class Outcome:
    figures: dict[str, Any]
    notes: str
    unsupported: str | None = None


class Store:
    """Fresh DBOS system databases of one kind, each a new empty "system", and their size on disk."""

    def __init__(self, kind: str, workdir: Path, postgres_url: str | None) -> None:
        self.kind = kind
        self.workdir = workdir
        self._server: Any = None
        self._own_server = False
        self._made: list[str] = []
        self.label = "SQLite (file)"
        if kind == "postgres":
            sys.path.insert(0, str(ROOT))
            from tests.support.postgres import PostgresServer

            if postgres_url:
                self._server = PostgresServer.external(postgres_url)
            else:
                self._server, self._own_server = PostgresServer.start(durable=True), True
            self.label = self._postgres_label()

    def _postgres_label(self) -> str:
        engine = sa.create_engine(_driver_url(self._server.admin_url))
        try:
            with engine.connect() as conn:
                version = str(conn.execute(sa.text("SHOW server_version")).scalar())
                fsync = str(conn.execute(sa.text("SHOW fsync")).scalar())
        finally:
            engine.dispose()
        return f"PostgreSQL {version.split('.')[0].split()[0]} (fsync {fsync})"

    def fresh(self) -> str:
        """The URL of a new, empty system database."""
        if self.kind == "sqlite":
            path = self.workdir / f"dbos-{len(self._made)}.sqlite"
            url = f"sqlite:///{path}"
        else:
            url = self._server.create_database(f"dbos_bench_{os.getpid()}_{len(self._made)}")
        self._made.append(url)
        return url

    def size_mb(self, url: str) -> float:
        """Bytes on disk: the SQLite file with its journal/WAL/shm files, or pg_database_size."""
        if self.kind == "sqlite":
            base = sa.make_url(url).database or ""
            files = [Path(base + suffix) for suffix in ("", "-journal", "-wal", "-shm")]
            return sum(f.stat().st_size for f in files if f.exists()) / 1e6
        with Records(url) as records:
            return float(records.scalar("SELECT pg_database_size(current_database())")) / 1e6

    def close(self) -> None:
        if self._server is None:
            return
        if self._own_server:
            self._server.stop()
            return
        for url in self._made:
            with contextlib.suppress(Exception):
                self._server.drop_database(url)


def _driver_url(url: str) -> str:
    """SQLAlchemy would pick psycopg2 for postgresql://; this repo ships psycopg 3, as DBOS uses."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class Records:
    """Read-only queries on DBOS's system database: the durable history the figures come from."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite")
        connect_args = {"timeout": 30} if self.sqlite else {}
        self.engine = sa.create_engine(_driver_url(url), connect_args=connect_args, poolclass=sa.NullPool)
        # workflow_status times are stamped by the database: on SQLite under Python < 3.12 DBOS uses
        # strftime('%s') * 1000, whole seconds. operation_outputs times are Python's clock in ms everywhere.
        self.status_times_precise = not self.sqlite or sys.version_info >= (3, 12)

    def __enter__(self) -> Records:
        return self

    def __exit__(self, *_: object) -> None:
        self.engine.dispose()

    def table(self, name: str) -> str:
        return name if self.sqlite else f"dbos.{name}"

    def scalar(self, query: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(query), params).scalar()

    def rows(self, query: str, **params: Any) -> list[sa.Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(query), params))

    def count(self, query: str, **params: Any) -> int:
        """A count for polling: 0 while the child has not yet created DBOS's tables."""
        try:
            return int(self.scalar(query, **params) or 0)
        except sa.exc.DBAPIError as e:
            if "no such table" in str(e) or "does not exist" in str(e):
                return 0
            raise

    def count_steps(self, function_name: str) -> int:
        q = f"SELECT count(*) FROM {self.table('operation_outputs')} WHERE function_name = :f"
        return self.count(q, f=function_name)

    def count_status(self, name: str, status: str) -> int:
        q = f"SELECT count(*) FROM {self.table('workflow_status')} WHERE name = :n AND status = :s"
        return self.count(q, n=name, s=status)

    def step_times_ms(self, function_name: str, column: str, agg: str) -> float:
        q = f"SELECT {agg}({column}) FROM {self.table('operation_outputs')} WHERE function_name = :f"
        return float(self.scalar(q, f=function_name))

    def first_created_ms(self, name: str, client_clock_s: float) -> float:
        """When the first workflow named `name` was created: its durable created_at where that has
        millisecond precision, else the creating process's clock just before its first start request."""
        if not self.status_times_precise:
            return client_clock_s * 1000
        q = f"SELECT min(created_at) FROM {self.table('workflow_status')} WHERE name = :n"
        return float(self.scalar(q, n=name))


def _dying_with_parent(argv: list[str]) -> list[str]:
    """`argv` under util-linux's setpriv, which has the kernel SIGKILL it when this process's forking
    thread dies, so nothing leaks; no Python runs between fork and exec (a preexec_fn there can
    abort or deadlock once gRPC's threads run in the parent)."""
    return ["setpriv", "--pdeathsig", "KILL", "--", *argv]


@dataclass
class Children:
    """The DBOS application processes of one scenario; all are stopped on exit, whatever happened."""

    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, role: str, url: str, **options: object) -> tuple[subprocess.Popen[bytes], Path]:
        result = self.workdir / f"{role}-{len(self.processes)}.json"
        argv = [sys.executable, __file__, "--child", role, "--url", url, "--result", str(result)]
        for key, value in options.items():
            argv += [f"--{key}", str(value)]
        log = (self.workdir / f"{role}-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(_dying_with_parent(argv), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        return process, result

    def spawn_sleepers(self, url: str, n: int, *, until: float) -> tuple[subprocess.Popen[bytes], Path]:
        """A DBOS process starting `n` sleepers until `until` (0: one day) and then keeping them."""
        options = {"n": n, "until": until, "threads": EXECUTOR_THREADS, "concurrency": CREATION_CONCURRENCY}
        return self.spawn("sleepers", url, **options)

    def log_tail(self, process: subprocess.Popen[bytes], lines: int = 15) -> str:
        index = self.processes.index(process)
        logs = sorted(self.workdir.glob(f"*-{index}.log"))
        text = logs[0].read_text(errors="replace") if logs else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, process: subprocess.Popen[bytes], *, kill: bool = False) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            self.stop(process)


@contextlib.contextmanager
def children(workdir: Path) -> Iterator[Children]:
    group = Children(workdir)
    try:
        yield group
    finally:
        group.stop_all()


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    watch: list[subprocess.Popen[bytes]],
    group: Children,
    interval: float = 0.1,
) -> None:
    """Poll `predicate`; fail early, with the child's log, if a watched child exits first.

    Figures come from the durable records, not from when a poll noticed; slow polls (`interval`) are
    for waits on SQLite, where every read briefly holds off DBOS's writers.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        for process in watch:
            if process.poll() is not None and process.returncode != 0:
                tail = group.log_tail(process)
                raise RuntimeError(f"DBOS child exited {process.returncode} waiting for {what}:\n{tail}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def read_result(
    path: Path, process: subprocess.Popen[bytes], group: Children, *, timeout: float, what: str
) -> dict[str, Any]:
    wait_until(path.exists, timeout=timeout, what=what, watch=[process], group=group)
    payload: dict[str, Any] = json.loads(path.read_text())
    return payload


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank, as bench/step_latency.py computes it, so the runners agree."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    total_kb = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
    return total_kb / 1024


IN_PROCESS = "DBOS runs each step in the application process (no network hop), checkpointing it to the system database"


def scenario_latency(store: Store, sizes: Sizes, workdir: Path) -> Outcome:
    url = store.fresh()
    n = sizes.latency_steps
    with children(workdir) as group:
        process, result = group.spawn("latency", url, n=n)
        inprocess = read_result(result, process, group, timeout=120 + n, what="the latency workflow")["inprocess_ms"]
    with Records(url) as records:
        query = (
            f"SELECT completed_at_epoch_ms FROM {records.table('operation_outputs')} "
            "WHERE workflow_uuid = :w AND function_name = :f ORDER BY function_id"
        )
        done = [float(r[0]) for r in records.rows(query, w=LATENCY_WORKFLOW_ID, f=STEP)]
    gaps = [b - a for a, b in itertools.pairwise(done)]
    figures = {
        "p50_ms": statistics.median(gaps),
        "p99_ms": percentile(gaps, 0.99),
        "samples": len(gaps),
        "inprocess_p50_ms": round(statistics.median(inprocess), 3),
        "inprocess_p99_ms": round(percentile(inprocess, 0.99), 3),
    }
    notes = (
        f"One sync workflow of {n} sequential no-op @DBOS.step calls after a warm-up; gaps between consecutive "
        "operation_outputs.completed_at_epoch_ms (DBOS records them in whole milliseconds, so p50/p99 are "
        "quantized; inprocess_* are the same gaps timed in the process with perf_counter); "
        f"{IN_PROCESS}."
    )
    return Outcome(figures, notes)


def scenario_throughput(store: Store, sizes: Sizes, workdir: Path) -> Outcome:
    url = store.fresh()
    executions, steps, workers = sizes.throughput_executions, sizes.throughput_steps, sizes.throughput_workers
    concurrency = math.ceil(executions / workers)
    poll = 0.1
    with children(workdir) as group:
        spawned = [
            group.spawn("worker", url, index=i, concurrency=concurrency, poll=poll) for i in range(workers)
        ]  # fmt: skip
        for process, ready in spawned:
            read_result(ready, process, group, timeout=120, what="a DBOS worker to launch")
        driver, driven = group.spawn("driver", url, n=executions, steps=steps)
        began = float(read_result(driven, driver, group, timeout=120 + executions, what="the enqueues")["began"])
        with Records(url) as records:
            wait_until(
                lambda: records.count_status(SEQUENTIAL, "SUCCESS") >= executions,
                timeout=120 + executions * steps,
                what=f"{executions} executions to succeed",
                watch=[p for p, _ in spawned],
                group=group,
            )
            ended = time.time()
            first_ms = records.first_created_ms(SEQUENTIAL, began)
            last_ms = records.step_times_ms(STEP, "completed_at_epoch_ms", "max")
            first_source = (
                "the first workflow's created_at"
                if records.status_times_precise
                else "the client's clock at the first enqueue (DBOS stamps created_at in whole seconds here)"
            )
    total = executions * steps
    figures = {
        "steps_per_s": round(total / ((last_ms - first_ms) / 1000), 1),
        "wall_steps_per_s": round(total / (ended - began), 1),
        "executions": executions,
        "steps": steps,
        "total_steps": total,
        "workers": workers,
    }
    notes = (
        f"A DBOS client enqueues {executions} sync workflows of {steps} no-op steps on a queue that {workers} "
        f"worker processes (one DBOS executor each, worker_concurrency {concurrency}, polling every {poll}s) "
        f"share through one system database; steps/s from {first_source} to the last "
        f"step's completed_at_epoch_ms, wall from the first enqueue until the runner sees all SUCCESS; {IN_PROCESS}."
    )
    if store.kind == "sqlite":
        notes += " SQLite serializes the writers of all processes on the file lock."
    return Outcome(figures, notes)


def scenario_fanout(store: Store, sizes: Sizes, workdir: Path) -> Outcome:
    url = store.fresh()
    n = sizes.fanout_steps
    with children(workdir) as group:
        process, result = group.spawn("fanout", url, n=n)
        wall_ms = float(read_result(result, process, group, timeout=120 + n, what="the fan-out workflow")["wall_ms"])
    with Records(url) as records:
        table = records.table("operation_outputs")
        query = f"SELECT count(*) FROM {table} WHERE workflow_uuid = :w AND function_name = :f"
        recorded = records.scalar(query, w=FANOUT_WORKFLOW_ID, f=ASYNC_STEP)
    if int(recorded) != n:
        raise RuntimeError(f"the fan-out workflow recorded {recorded} steps, not {n}")
    notes = (
        f"One async workflow starting {n} no-op async steps as asyncio tasks and gathering them (DBOS's pattern "
        "for parallel steps), after a warm-up; wall from start_workflow_async until its result, in the same "
        f"process; {IN_PROCESS}."
    )
    return Outcome({"wall_ms": round(wall_ms, 2), "steps": n}, notes)


def scenario_map(store: Store, sizes: Sizes, workdir: Path) -> Outcome:
    url = store.fresh()
    n = sizes.map_items
    with children(workdir) as group:
        process, result = group.spawn("map", url, n=n)
        wall_ms = float(read_result(result, process, group, timeout=120 + n, what="the map workflow")["wall_ms"])
    with Records(url) as records:
        table = records.table("operation_outputs")
        query = f"SELECT count(*) FROM {table} WHERE workflow_uuid = :w AND function_name = :f"
        listed = records.scalar(query, w=MAP_WORKFLOW_ID, f=ITEMS_STEP)
        recorded = records.scalar(query, w=MAP_WORKFLOW_ID, f=ITEM_STEP)
    if int(listed) != 1 or int(recorded) != n:
        raise RuntimeError(f"the map workflow recorded {listed} list steps and {recorded} item steps, not 1 and {n}")
    notes = (
        f"One async workflow whose first async step returns a list of {n} items, then starts one no-op async step "
        "per item as asyncio tasks and gathers them (DBOS's pattern for parallel steps), after a warm-up; wall from "
        f"start_workflow_async until its result, in the same process; {IN_PROCESS}."
    )
    return Outcome({"wall_ms": round(wall_ms, 2), "items": n}, notes)


def _creation_timeout(n: int) -> float:
    return 120 + n / 10


@dataclass
class Asleep:
    """A DBOS process whose sleepers are all asleep."""

    process: subprocess.Popen[bytes]
    create_s: float  # from the first start request to the last sleep checkpoint, as recorded
    idle_rss_mb: float  # the process tree's RSS once DBOS had launched, before the first start


def _fall_asleep(group: Children, records: Records, url: str, n: int, *, until: float, timeout: float) -> Asleep:
    """Spawn a DBOS process starting `n` sleepers; return once all are asleep."""
    process, result = group.spawn_sleepers(url, n, until=until)
    wait_until(
        lambda: records.count_steps(SLEEP_RECORD) >= n,
        timeout=timeout,
        what=f"{n} workflows to fall asleep",
        watch=[process],
        group=group,
        interval=SLOW_POLL_S,
    )
    report = read_result(result, process, group, timeout=60, what="the creation report")
    first_ms = records.first_created_ms("bench_sleeper", float(report["began"]))
    asleep_ms = records.step_times_ms(SLEEP_RECORD, "started_at_epoch_ms", "max")
    return Asleep(process, (asleep_ms - first_ms) / 1000, float(report["idle_rss_mb"]))


def _wave_memory(store: Store, n: int, workdir: Path) -> dict[str, float]:
    """Wave 1: N sleepers of one day; memory, store size and create_s once all are asleep."""
    url = store.fresh()
    with children(workdir) as group, Records(url) as records:
        asleep = _fall_asleep(group, records, url, n, until=0, timeout=_creation_timeout(n))
        time.sleep(1.0)  # let the last sleepers' bookkeeping settle before sampling memory
        return {
            "rss_mb": tree_rss_mb(asleep.process.pid),
            "rss_idle_mb": asleep.idle_rss_mb,
            "store_mb": store.size_mb(url),
            "create_s": asleep.create_s,
        }


def _wave_wake(store: Store, n: int, create_s: float, workdir: Path) -> tuple[float, bool]:
    """Wave 2: N sleepers until one shared wake_at; (wake_s, all asleep before wake_at)."""
    url = store.fresh()
    wake_at = time.time() + 10 + 1.5 * create_s  # process start and launch, then wave 1's pace with margin
    with children(workdir) as group, Records(url) as records:
        timeout = _creation_timeout(n) + 1.5 * create_s
        process = _fall_asleep(group, records, url, n, until=wake_at, timeout=timeout).process
        asleep_in_time = records.step_times_ms(SLEEP_RECORD, "started_at_epoch_ms", "max") < wake_at * 1000
        wait_until(
            lambda: records.count_steps(AFTER_SLEEP_STEP) >= n,
            timeout=max(0.0, wake_at - time.time()) + _creation_timeout(n),
            what=f"{n} workflows to wake and run their step",
            watch=[process],
            group=group,
            interval=SLOW_POLL_S,
        )
        last_ms = records.step_times_ms(AFTER_SLEEP_STEP, "completed_at_epoch_ms", "max")
    return last_ms / 1000 - wake_at, asleep_in_time


def scenario_hibernation(store: Store, sizes: Sizes, workdir: Path) -> Outcome:
    n = sizes.hibernation_executions
    memory = _wave_memory(store, n, workdir)
    wake_s, asleep_in_time = _wave_wake(store, n, memory["create_s"], workdir)
    if not asleep_in_time:
        raise RuntimeError("wave 2: some workflows fell asleep only after wake_at; wake_s would mean nothing")
    figures = {
        "executions": n,
        "rss_mb": round(memory["rss_mb"], 1),
        "store_mb": round(memory["store_mb"], 2),
        "create_s": round(memory["create_s"], 2),
        "wake_s": round(wake_s, 3),
        "rss_idle_mb": round(memory["rss_idle_mb"], 1),
    }
    rate = n / memory["create_s"]
    notes = (
        f"{n} async workflows (step, DBOS.sleep_async, step) started {CREATION_CONCURRENCY} at a time in one DBOS "
        "process, whose process tree's RSS is rss_mb (rss_idle_mb: just launched"
        + ("; PostgreSQL's own memory not included)" if store.kind == "postgres" else ")")
        + "; create_s from the first start request to the last sleep checkpoint; wake_s from wake_at to the last "
        "post-sleep step's completed_at, in a fresh system; async because a sleeping sync workflow holds an OS "
        "thread, and this machine allows about 32,000"
        + (
            f"; N is not the README's 100,000 because at the {rate:.0f} workflows/s DBOS created here one wave "
            f"would take {100_000 / rate / 60:.0f} minutes"
            if not sizes.quick and n < 100_000
            else ""
        )
        + f"; {IN_PROCESS}."
    )
    return Outcome(figures, notes)


def _creation_rate(store: Store, n: int, workdir: Path) -> float:
    """Workflows/s of a calibration wave of `n` sleepers in a throwaway system, to choose T by."""
    url = store.fresh()
    with children(workdir) as group, Records(url) as records:
        asleep = _fall_asleep(group, records, url, n, until=0, timeout=_creation_timeout(n))
    return n / asleep.create_s


def scenario_recovery(store: Store, sizes: Sizes, workdir: Path) -> Outcome:
    n = sizes.recovery_executions
    rate = _creation_rate(store, min(n, CALIBRATION_EXECUTIONS), workdir)
    url = store.fresh()
    wake_at = time.time() + 10 + RECOVERY_MARGIN * n / rate  # T: every workflow must be asleep before it
    with children(workdir) as group, Records(url) as records:
        timeout = max(1.0, wake_at - 1 - time.time())
        first = _fall_asleep(group, records, url, n, until=wake_at, timeout=timeout).process
        group.stop(first, kill=True)  # SIGKILL; nothing happens in DBOS between now and T
        time.sleep(max(0.0, wake_at - time.time()) + 0.5)
        spawned = time.time()
        second, _ = group.spawn("serve", url, threads=EXECUTOR_THREADS)
        wait_until(
            lambda: records.count_status("bench_sleeper", "SUCCESS") >= n,
            timeout=_creation_timeout(n) * 2,
            what=f"{n} recovered workflows to succeed",
            watch=[second],
            group=group,
            interval=SLOW_POLL_S,
        )
        if records.count_steps(AFTER_SLEEP_STEP) < n:
            raise RuntimeError("some workflows succeeded without running their post-sleep step")
        last_ms = records.step_times_ms(AFTER_SLEEP_STEP, "completed_at_epoch_ms", "max")
    notes = (
        f"{n} async workflows (step, DBOS.sleep_async until T, step) in one DBOS process, SIGKILLed once all "
        "were asleep (T chosen from a calibration wave's creation rate); after T a fresh process launches DBOS "
        "on the same system database, which re-enqueues the pending workflows; recover_s from that spawn to the "
        f"last post-sleep step's completed_at_epoch_ms; {IN_PROCESS}."
    )
    return Outcome({"executions": n, "recover_s": round(last_ms / 1000 - spawned, 3)}, notes)


SCENARIO_RUNNERS: dict[str, Callable[[Store, Sizes, Path], Outcome]] = {
    "latency": scenario_latency,
    "throughput": scenario_throughput,
    "fanout": scenario_fanout,
    "map": scenario_map,
    "hibernation": scenario_hibernation,
    "recovery": scenario_recovery,
}


def measure(args: argparse.Namespace) -> tuple[str, Outcome]:
    """Run one scenario in a fresh temp dir and store; return the store's label and the outcome."""
    sizes = QUICK if args.quick else FULL
    if args.executions:
        sizes = dataclasses.replace(sizes, hibernation_executions=args.executions, recovery_executions=args.executions)
    workdir = Path(tempfile.mkdtemp(prefix="dbos-bench-"))
    store: Store | None = None
    try:
        store = Store(args.store, workdir, args.postgres_url)
        return store.label, SCENARIO_RUNNERS[args.scenario](store, sizes, workdir)
    finally:
        if store is not None:
            store.close()
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.scenario == "kubernetes":
        label = "SQLite (file)" if args.store == "sqlite" else "PostgreSQL (fsync on)"
        outcome = Outcome({}, "Not run.", NO_KUBERNETES)
    else:
        label, outcome = measure(args)
    return {
        "system": "DBOS Transact",
        "version": f"dbos {importlib.metadata.version('dbos')} (Python library, in-process steps)",
        "store": label,
        "scenario": args.scenario,
        "figures": outcome.figures,
        "notes": outcome.notes,
        "unsupported": outcome.unsupported,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=SCENARIOS)
    parser.add_argument("--out", help="where to write the result JSON")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", help="a server to create fresh databases on, instead of starting one")
    parser.add_argument("--executions", type=int, help="N for hibernation and recovery instead of the default")
    child = parser.add_argument_group("child process (internal)")
    child.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    child.add_argument("--url", help=argparse.SUPPRESS)
    child.add_argument("--result", help=argparse.SUPPRESS)
    child.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    child.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)
    child.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    child.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    child.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    child.add_argument("--until", type=float, default=0.0, help=argparse.SUPPRESS)
    child.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is None and (args.scenario is None or args.out is None):
        parser.error("--scenario and --out are required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        CHILDREN[args.child](args)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup in `finally` blocks
    result = run(args)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["figures"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
