"""Cerebelum's benchmark runner: the scenarios of bench/README.md on `cerebelum dev`.

The engine and its workers run as separate processes, as they would in production; figures
come from the engine's own history (the store) or, for step-to-step latency, from the
worker's clock at microsecond resolution (the history records milliseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import create_engine, make_url, text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.common import (  # noqa: E402
    Result,
    database_size_mb,
    percentile,
    process_tree_cpu_s,
    process_tree_rss_mb,
    recorded_at,
    sqlite_files_mb,
    wait_until,
)
from cerebelum import AsyncClient, Client  # noqa: E402
from cerebelum_operator.model.shards import DEFAULT_SHARDS, shard_of  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

SYSTEM = "Cerebelum"
SCENARIOS = ("latency", "throughput", "fanout", "map", "hibernation", "recovery", "code-scale", "flow-control")
CODE_SCENARIOS = ("latency", "throughput", "fanout", "code-scale")  # measured as code workflows (--code)
CODE = {"on": False}  # --code: the scenarios' workflows are the worker's code (bench/cerebelum_worker.py)


def chain_workflow(client: Client, name: str, steps: list[str]) -> Any:
    """Apply ``name``: the steps in a row, as a timeline or (with --code) as the worker's `chain`; its input."""
    if CODE["on"]:
        client.apply_workflow(name, {"taskQueue": "bench", "code": {"function": "chain"}})
        return {"steps": len(steps)}
    client.apply_workflow(name, {"taskQueue": "bench", "timeline": steps})
    return {}


def warm_up(client: Client, workers: int) -> None:
    """A few short executions first, as the peers' runners do: the workers' connections and first code
    paths are not measured (their own workflow, so the measured one's history holds none of them)."""
    client.apply_workflow("warm-up", {"taskQueue": "bench", "timeline": ["s1", "s2"]})
    started = [client.start("warm-up", {}, execution_id=f"warm-up-{index}") for index in range(4 * workers)]
    for execution in started:
        client.wait(execution.id, timeout=120)


@dataclass(frozen=True)
class Sizes:
    latency_steps: int
    latency_runs: int
    executions: int
    steps: int
    workers: int
    fanout: int
    map_items: int
    hibernating: int
    recovering: int

    @classmethod
    def of(cls, *, quick: bool) -> Sizes:
        if quick:
            return cls(20, 1, 20, 3, 2, 10, 20, 200, 100)
        return cls(200, 3, 200, 10, 4, 100, 1_000, 100_000, 10_000)


# -- the engine and its workers as processes ---------------------------------------------------------------
@dataclass
class DevEngine:
    """`cerebelum dev` on a store URL; kill and restart it like an operator would be."""

    store_url: str
    address: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    process: subprocess.Popen[bytes] | None = None
    spawned_at: float = 0.0

    def start(self) -> None:
        command = [sys.executable, "-m", "cerebelum_operator.cli", "dev", "--address", self.address]
        self.spawned_at = time.monotonic()
        self.process = subprocess.Popen([*command, "--db", self.store_url, "--log-level", "warning"])
        grpc.channel_ready_future(grpc.insecure_channel(self.address)).result(timeout=120)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def workers(
    address: str, count: int, *, ledger: Path | None = None, ready: bool = False
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` worker processes; with ``ready``, returned once each has imported its code and is
    about to connect, as the peers' runners wait for theirs (then warm up, `warm_up`)."""
    env = {**os.environ, "CEREBELUM_ADDRESS": address}
    if ledger is not None:
        env["BENCH_LEDGER"] = str(ledger)
    script = str(HERE / "cerebelum_worker.py")
    marks = Path(tempfile.mkdtemp(prefix="bench-ready-"))
    processes = [
        subprocess.Popen(
            [sys.executable, script], env={**env, "BENCH_READY": str(marks / f"{index}")} if ready else env
        )
        for index in range(count)
    ]
    try:
        if ready:
            wait_until(lambda: all((marks / f"{index}").exists() for index in range(count)), timeout=120)
        yield processes
    finally:
        shutil.rmtree(marks, ignore_errors=True)
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def store(kind: str, postgres_url: str | None, directory: Path) -> Iterator[str]:
    """A fresh store URL: a SQLite file, or a new database on a durable PostgreSQL server."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / f'bench-{time.monotonic_ns()}.db'}"
        return
    from tests.support.postgres import PostgresServer

    server = PostgresServer.external(postgres_url) if postgres_url else PostgresServer.start(durable=True)
    try:
        yield server.create_database()
    finally:
        server.stop()


@contextlib.contextmanager
def engine(store_url: str) -> Iterator[DevEngine]:
    dev = DevEngine(store_url)
    dev.start()
    try:
        yield dev
    finally:
        dev.stop()


class History:
    """Reads the engine's store directly: counts and times, cheaper than a million RPCs."""

    def __init__(self, store_url: str) -> None:
        self.url = store_url
        self._engine = create_engine(store_url)

    def scalar(self, sql: str, **params: Any) -> Any:
        with self._engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def queued_tasks(self) -> float:
        """Tasks queued (not leased) now: what the dispatcher holds in memory waiting for a worker."""
        return float(self.scalar("SELECT count(*) FROM tasks WHERE state = 'queued'") or 0)

    def count_phase(self, phase: str) -> int:
        return int(self.scalar("SELECT count(*) FROM executions WHERE phase = :phase", phase=phase) or 0)

    def span_ms(self, workflow: str) -> tuple[int, int]:
        """(first ExecutionStarted, last ExecutionSucceeded) of a workflow's executions, epoch ms."""
        first = self.scalar(
            "SELECT min(e.at_ms) FROM events e JOIN executions x ON x.execution_id = e.execution_id "
            "WHERE x.workflow = :w AND e.kind = 'ExecutionStarted'",
            w=workflow,
        )
        last = self.scalar(
            "SELECT max(e.at_ms) FROM events e JOIN executions x ON x.execution_id = e.execution_id "
            "WHERE x.workflow = :w AND e.kind = 'ExecutionSucceeded'",
            w=workflow,
        )
        return int(first), int(last)

    def close(self) -> None:
        self._engine.dispose()


async def start_many(address: str, workflow: str, inputs: list[Any], *, concurrency: int = 64) -> list[str]:
    """Start executions concurrently, as many clients would; their ids in order."""
    gate = asyncio.Semaphore(concurrency)
    async with AsyncClient(address=address) as client:

        async def one(value: Any) -> str:
            async with gate:
                return (await client.start(workflow, value)).id

        return list(await asyncio.gather(*(one(value) for value in inputs)))


async def wait_all(address: str, ids: list[str], *, wait_s: float) -> list[str]:
    gate = asyncio.Semaphore(256)
    async with AsyncClient(address=address) as client:

        async def one(execution_id: str) -> str:
            async with gate:
                return (await client.wait(execution_id, timeout=wait_s)).phase

        return list(await asyncio.gather(*(one(i) for i in ids)))


# -- scenarios ----------------------------------------------------------------------------------------------
def latency(store_url: str, sizes: Sizes, work: Path) -> tuple[dict[str, Any], str]:
    ledger = work / "ledger.txt"
    steps = [f"s{i}" for i in range(1, sizes.latency_steps + 1)]
    gaps_us: list[float] = []
    history_gaps_ms: list[float] = []
    with engine(store_url) as dev, workers(dev.address, 1, ledger=ledger), Client(address=dev.address) as client:
        input = chain_workflow(client, "latency", steps)
        warm = client.start("latency", input)
        assert client.wait(warm.id, timeout=120).phase == "Succeeded"
        for _ in range(sizes.latency_runs):
            ledger.write_text("")
            run = client.start("latency", input)
            final = client.wait(run.id, timeout=120)
            assert final.phase == "Succeeded", final.error
            starts = [int(line.split()[1]) for line in ledger.read_text().splitlines()]
            gaps_us.extend((b - a) / 1000 for a, b in itertools.pairwise(starts))
            done = [recorded_at(e) for e in client.history(run.id) if e.type == "StepCompleted"]
            history_gaps_ms.extend((b - a).total_seconds() * 1000 for a, b in itertools.pairwise(done))
    figures = {
        "p50_ms": round(statistics.median(gaps_us) / 1000, 3),
        "p99_ms": round(percentile(gaps_us, 0.99) / 1000, 3),
        "samples": len(gaps_us),
        "history_p50_ms": round(statistics.median(history_gaps_ms), 3),
        "mean_ms": round(statistics.fmean(gaps_us) / 1000, 3),
    }
    notes = (
        f"{sizes.latency_runs} executions of {sizes.latency_steps} steps after a warm-up; gap between the starts "
        "of consecutive steps on the worker's clock (each start follows the previous step's durable completion, "
        "which leases the next step in the same commit); history_p50_ms is the same from the history (ms resolution)"
    )
    return figures, notes


def throughput(store_url: str, sizes: Sizes, work: Path) -> tuple[dict[str, Any], str]:
    steps = [f"s{i}" for i in range(1, sizes.steps + 1)]
    with engine(store_url) as dev, workers(dev.address, sizes.workers, ready=True) as pool:
        with Client(address=dev.address) as client:
            input = chain_workflow(client, "throughput", steps)
            warm_up(client, sizes.workers)
        assert dev.process is not None
        cpu = _CpuMeter(dev.process.pid, [worker.pid for worker in pool])
        began = time.monotonic()
        ids = asyncio.run(start_many(dev.address, "throughput", [input] * sizes.executions))
        phases = asyncio.run(wait_all(dev.address, ids, wait_s=600))
        wall = time.monotonic() - began
        engine_cpu_s, workers_cpu_s = cpu.used()
        assert set(phases) == {"Succeeded"}, phases
        history = History(store_url)
        first, last = history.span_ms("throughput")
        history.close()
    total = sizes.executions * sizes.steps
    figures = {
        "steps_per_s": round(total / ((last - first) / 1000), 1),
        "wall_steps_per_s": round(total / wall, 1),
        "executions": sizes.executions,
        "steps": sizes.steps,
        "workers": sizes.workers,
        "engine_cpu_ms_per_step": round(1000 * engine_cpu_s / total, 3),
        "workers_cpu_ms_per_step": round(1000 * workers_cpu_s / total, 3),
    }
    notes = (
        f"{sizes.executions} executions started at once by 64 concurrent clients, {sizes.workers} worker processes "
        "(each up, then 4 warm-up executions a worker, before the clock); "
        "steps/s between the first ExecutionStarted and the last ExecutionSucceeded in the history; CPU per step: "
        "the engine's and the workers' user and system time from the first start to the last wait, over the steps"
    )
    return figures, notes


class _CpuMeter:
    """CPU seconds the engine and the workers use from now: what bounds throughput on a machine, and a
    figure that compares across machines better than steps/s alone (bench/analysis.md)."""

    def __init__(self, engine_pid: int, worker_pids: list[int]) -> None:
        self.engine_pid, self.worker_pids = engine_pid, worker_pids
        self.engine_before = process_tree_cpu_s(engine_pid)
        self.workers_before = sum(process_tree_cpu_s(pid) for pid in worker_pids)

    def used(self) -> tuple[float, float]:
        engine = process_tree_cpu_s(self.engine_pid) - self.engine_before
        workers = sum(process_tree_cpu_s(pid) for pid in self.worker_pids) - self.workers_before
        return engine, workers


# A Workflow's flowControl that never binds at the bench's sizes: what counting and admission cost.
KEYED = {
    "key": "input.k",
    "concurrency": 100_000,
    "priority": "input.k == 'customer-0' ? 1 : 0",
    "rateLimit": {"tasks": 1_000_000, "per": "1s"},
}


def flow_control(store_url: str, sizes: Sizes, work: Path) -> tuple[dict[str, Any], str]:
    """The throughput scenario on one engine: without flow control ("off"), with a task queue rate
    limit too high to bind (1,000,000/s, "on"), and with a Workflow's flowControl ("keyed": 20 keys,
    a concurrency per key and a key rate that never bind, a priority), in alternating rounds, so
    that the load of a shared machine falls on all alike; the medians' differences are the costs."""
    from cerebelum.v1 import task_queue_pb2, task_queue_pb2_grpc

    steps = [f"s{i}" for i in range(1, sizes.steps + 1)]
    rounds = 1 if sizes.executions < 100 else 3
    phases = ("off", "on", "keyed")
    measured: dict[str, list[float]] = {phase: [] for phase in phases}
    walls: dict[str, list[float]] = {phase: [] for phase in phases}
    with engine(store_url) as dev, workers(dev.address, sizes.workers):
        channel = grpc.insecure_channel(dev.address)
        stub = task_queue_pb2_grpc.TaskQueueServiceStub(channel)  # type: ignore[no-untyped-call]
        for round_ in range(rounds):
            for phase in phases:
                request = task_queue_pb2.SetTaskQueueRateLimitRequest(name="bench")
                if phase == "on":
                    request.rate_limit.CopyFrom(task_queue_pb2.RateLimit(count=1_000_000, period_ms=1000))
                stub.SetTaskQueueRateLimit(request, timeout=30)
                name = f"flow-{phase}-{round_}"
                with Client(address=dev.address) as client:
                    input = chain_workflow(client, name, steps)
                    if phase == "keyed":
                        client.apply_workflow(name, {"taskQueue": "bench", "timeline": steps, "flowControl": KEYED})
                inputs = [{**input, "k": f"customer-{n % 20}"} for n in range(sizes.executions)]
                began = time.monotonic()
                ids = asyncio.run(start_many(dev.address, name, inputs))
                ended = asyncio.run(wait_all(dev.address, ids, wait_s=600))
                wall = time.monotonic() - began
                assert set(ended) == {"Succeeded"}, ended
                history = History(store_url)
                first, last = history.span_ms(name)
                history.close()
                total = sizes.executions * sizes.steps
                measured[phase].append(total / ((last - first) / 1000))
                walls[phase].append(total / wall)
        channel.close()
    figures: dict[str, Any] = {"executions": sizes.executions, "steps": sizes.steps, "workers": sizes.workers}
    for phase in phases:
        figures[f"{phase}_steps_per_s"] = round(statistics.median(measured[phase]), 1)
        figures[f"{phase}_wall_steps_per_s"] = round(statistics.median(walls[phase]), 1)
        figures[f"{phase}_rounds"] = [round(x, 1) for x in measured[phase]]
    figures["cost_pct"] = round(100 * (1 - figures["on_steps_per_s"] / figures["off_steps_per_s"]), 1)
    figures["keyed_cost_pct"] = round(100 * (1 - figures["keyed_steps_per_s"] / figures["off_steps_per_s"]), 1)
    notes = (
        f"the throughput shape on one engine and store in {rounds} alternating round(s): without flow control, then "
        "with a queue rate limit of 1,000,000/s that never binds, then with a Workflow's flowControl over 20 keys"
        " (a concurrency, a key rate and a priority that never bind), medians; a rate limit costs a start row"
        " written with each lease, a concurrency limit one more decision per execution (its admission)"
    )
    return figures, notes


def fanout(store_url: str, sizes: Sizes, work: Path) -> tuple[dict[str, Any], str]:
    group = [f"s{i}" for i in range(1, sizes.fanout + 1)]
    walls: list[float] = []
    with engine(store_url) as dev, workers(dev.address, 1), Client(address=dev.address) as client:
        if CODE["on"]:
            client.apply_workflow("fanout", {"taskQueue": "bench", "code": {"function": "fan"}})
        else:
            client.apply_workflow("fanout", {"taskQueue": "bench", "timeline": [group]})
        for attempt in range(4):  # the first one warms up
            began = time.perf_counter()
            run = client.start("fanout", {"steps": len(group)})
            assert client.wait(run.id, timeout=120).phase == "Succeeded"
            if attempt:
                walls.append((time.perf_counter() - began) * 1000)
    figures = {"wall_ms": round(statistics.median(walls), 1), "steps": sizes.fanout}
    notes = "median of 3 runs after a warm-up, one worker process (concurrency 200); start request to seen finished"
    return figures, notes


MAX_FOR_EACH_CONCURRENCY = 1000  # the highest forEach.concurrency a spec may ask for


def fan_map(store_url: str, sizes: Sizes, work: Path) -> tuple[dict[str, Any], str]:
    count = sizes.map_items
    concurrency = min(count, MAX_FOR_EACH_CONCURRENCY)
    spec = {
        "taskQueue": "bench",
        "timeline": ["items", "each"],
        "steps": {
            "each": {
                "function": "item_step",
                "forEach": {"items": "steps.items", "concurrency": concurrency},
                "args": {"value": "item"},
            }
        },
    }
    walls: list[float] = []
    with engine(store_url) as dev, workers(dev.address, 1), Client(address=dev.address) as client:
        client.apply_workflow("map", spec)
        for attempt in range(4):  # the first one warms up
            began = time.perf_counter()
            run = client.start("map", {"count": count})
            final = client.wait(run.id, timeout=300)
            assert final.phase == "Succeeded", final.error
            if attempt:
                walls.append((time.perf_counter() - began) * 1000)
            assert final.output == list(range(count)), "the forEach step's result is not every item's output in order"
    figures = {"wall_ms": round(statistics.median(walls), 1), "items": count}
    notes = (
        f"median of 3 runs after a warm-up; a step returns the list of {count} items, then one forEach step "
        f"(concurrency {concurrency}) runs a no-op worker function per item, one worker process (concurrency 200); "
        "start request to seen finished, the output checked to be every item's result in order"
    )
    return figures, notes


def code_scale(store_url: str, sizes: Sizes, work: Path) -> tuple[dict[str, Any], str]:
    """A loop of many iterations continuing as new, then a worker holding many executions in its cache."""
    iterations, per_run, cached = (1_000, 250, 100) if sizes.latency_runs == 1 else (10_000, 2_000, 1_000)
    env = {**os.environ, "BENCH_MAX_CACHED": str(cached)}
    with engine(store_url) as dev, Client(address=dev.address) as client:
        env["CEREBELUM_ADDRESS"] = dev.address
        worker = subprocess.Popen([sys.executable, str(HERE / "cerebelum_worker.py")], env=env)
        try:
            client.apply_workflow("counter", {"taskQueue": "bench", "code": {"function": "counter"}})
            client.apply_workflow("parked", {"taskQueue": "bench", "code": {"function": "parked"}})
            began = time.monotonic()
            run = client.start("counter", {"count": 0, "until": iterations, "per_run": per_run})
            final = client.wait(run.id, timeout=3600, follow_runs=True)
            loop_s = time.monotonic() - began
            assert final.phase == "Succeeded", final.error
            assert final.output == iterations, final.output
            runs = final.run
            before = process_tree_rss_mb(worker.pid)
            ids = asyncio.run(start_many(dev.address, "parked", [{}] * cached))
            wait_until(lambda: all(client.get(i).phase == "WaitingForSignal" for i in ids), 600, every=1.0)
            after = process_tree_rss_mb(worker.pid)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    figures = {
        "iterations": iterations,
        "runs": runs,
        "loop_s": round(loop_s, 1),
        "iterations_per_s": round(iterations / loop_s, 1),
        "cached": cached,
        "worker_rss_mb": round(after, 1),
        "kb_per_cached": round((after - before) * 1024 / cached, 1),
    }
    notes = (
        f"one code workflow counting to {iterations:,} with a step per iteration, continuing as new every"
        f" {per_run:,} (each run's history stays small); then {cached:,} executions parked on a signal after one"
        " step, all held in one worker's cache: its RSS, and the growth per cached execution"
    )
    return figures, notes


def _sleepers(
    dev: DevEngine, history: History, count: int, wake_at_ms: int | None, *, api_starts: int | None = None
) -> tuple[float, float]:
    """Start `count` executions of `nap -> s1`; (seconds to start them, seconds until all sleep).

    With ``api_starts`` below ``count``, only that many start through the API (half before, half
    after the copies): the others are copies of the first one's store rows (`clone_sleepers`),
    written while the engine is stopped, which then starts again on them. A million starts through
    the API take about 40 minutes per wave on the 2-core machine; the copies take a minute or two.
    """
    with Client(address=dev.address) as client:
        client.apply_workflow("hibernate", {"taskQueue": "bench", "timeline": ["nap", "s1"]})
    value = {} if wake_at_ms is None else {"wakeAt": wake_at_ms}
    began = time.monotonic()
    through_api = count if api_starts is None or api_starts >= count else api_starts
    first = through_api if through_api == count else max(1, through_api // 2)
    asyncio.run(start_many(dev.address, "hibernate", [value] * first, concurrency=128))
    if through_api < count:
        wait_until(
            lambda: history.count_phase("Sleeping") >= first, timeout=max(1800, first / 100), every=_poll_every(first)
        )
        template = history.scalar(
            "SELECT execution_id FROM executions WHERE workflow = 'hibernate' AND phase = 'Sleeping' LIMIT 1"
        )
        dev.stop()
        clone_sleepers(history.url, str(template), count - through_api)
        dev.start()
        asyncio.run(start_many(dev.address, "hibernate", [value] * (through_api - first), concurrency=128))
    created = time.monotonic() - began
    wait_until(
        lambda: history.count_phase("Sleeping") + history.count_phase("Succeeded") >= count,
        timeout=max(1800, count / 100),
        every=_poll_every(count),
    )
    return created, time.monotonic() - began


def _poll_every(count: int) -> float:
    """How often to count a phase over ``count`` executions: each count reads an index of that size, and
    at a million every 50 ms would take a core from the engine. The figures come from the history's
    times, not from when a poll saw them."""
    return 0.05 if count < 10_000 else 1.0


def clone_sleepers(store_url: str, template_id: str, count: int) -> None:
    """``count`` copies of a sleeping execution's rows in a SQLite store the engine is not running on.

    Every row naming the template (any table with an `execution_id`) is copied with a new id in
    its place (in the events' data too: tokens and timer ids embed it) and the shard the engine
    would give that id; the ids are sorted so the inserts append to the indexes.
    """
    path = make_url(store_url).database
    assert path, store_url
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA cache_size = -262144")  # 256 MB: the indexes being appended to stay in memory
        copies: list[tuple[str, list[str], list[tuple[Any, ...]], set[str]]] = []
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in sorted(tables, key=lambda name: name != "executions"):  # the parent rows first
            columns = db.execute(f'PRAGMA table_info("{table}")').fetchall()
            names = [column[1] for column in columns]
            if "execution_id" not in names:
                continue
            texts = {column[1] for column in columns if (column[2] or "").upper() in ("TEXT", "JSON", "")}
            quoted = ", ".join(f'"{name}"' for name in names)
            rows = db.execute(f'SELECT {quoted} FROM "{table}" WHERE execution_id = ?', (template_id,)).fetchall()
            if rows:
                copies.append((table, names, rows, texts))
        assert copies, template_id
        assert copies[0][0] == "executions", copies
        if "shard" in copies[0][1]:
            stored = copies[0][2][0][copies[0][1].index("shard")]
            assert stored == shard_of(template_id, shards=DEFAULT_SHARDS), "the engine places executions otherwise"
        ids = sorted(uuid.uuid4().hex[:20] for _ in range(count))
        for chunk in _chunks(ids, 20_000):
            db.execute("BEGIN")
            for table, names, rows, texts in copies:
                marks = ", ".join("?" for _ in names)
                quoted = ", ".join(f'"{name}"' for name in names)
                db.executemany(
                    f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})',
                    (
                        tuple(
                            shard_of(new_id, shards=DEFAULT_SHARDS)
                            if name == "shard"
                            else value.replace(template_id, new_id)
                            if name in texts and isinstance(value, str)
                            else value
                            for name, value in zip(names, row, strict=True)
                        )
                        for new_id in chunk
                        for row in rows
                    ),
                )
            db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def hibernation(
    store_url: str, sizes: Sizes, work: Path, *, second_store: str, api_starts: int | None = None
) -> tuple[dict[str, Any], str]:
    count = sizes.hibernating
    copies = 0 if api_starts is None or api_starts >= count else count - api_starts
    if copies and not store_url.startswith("sqlite"):
        raise SystemExit("--api-starts copies rows in a SQLite store only")
    with engine(store_url) as dev, workers(dev.address, 2):
        history = History(store_url)
        baseline_mb = process_tree_rss_mb(dev.pid)
        create_s, asleep_s = _sleepers(dev, history, count, None, api_starts=api_starts)
        time.sleep(2)  # let the last commits and the caches settle
        rss_mb = process_tree_rss_mb(dev.pid)
        size_mb = sqlite_files_mb(store_url) if store_url.startswith("sqlite") else database_size_mb(store_url)
        history.close()
    # Wave 2: a fresh engine; all sleep until one instant chosen from wave 1's pace.
    margin_s = 1.3 * asleep_s + (5 if count < 1000 else 20)
    wake_at_ms = int((time.time() + margin_s) * 1000)
    with engine(second_store) as dev, workers(dev.address, 2):
        history = History(second_store)
        _sleepers(dev, history, count, wake_at_ms, api_starts=api_starts)
        all_asleep_before = time.time() * 1000 < wake_at_ms
        with peak_rss(dev.pid) as peak, peak_of(history.queued_tasks) as queued:
            wait_until(
                lambda: history.count_phase("Succeeded") >= count,
                timeout=max(1800, count / 100),
                every=_poll_every(count),
            )
        fired = int(history.scalar("SELECT max(at_ms) FROM events WHERE kind = 'SleepEnded'"))
        last = int(history.scalar("SELECT max(at_ms) FROM events WHERE kind = 'ExecutionSucceeded'"))
        history.close()
    fire_s = max(0.001, (fired - wake_at_ms) / 1000)
    figures = {
        "executions": count,
        "rss_mb": round(rss_mb, 1),
        "rss_idle_mb": round(baseline_mb, 1),
        "store_mb": round(size_mb, 1),
        "create_s": round(create_s, 1),
        "wake_s": round((last - wake_at_ms) / 1000, 2),
        "fire_s": round(fire_s, 2),
        "timers_per_s": round(count / fire_s),
        "wake_peak_rss_mb": round(peak[0], 1),
        "wake_peak_queued": int(queued[0]),
    }
    if copies:
        figures["api_starts"] = count - copies
    notes = (
        f"engine RSS with {count} executions asleep for a day (idle engine: {baseline_mb:.0f} MB); wave 2: all due "
        f"at one instant{'' if all_asleep_before else ' (some were still starting when it came)'}, fire_s until "
        "the last timer fired (timers_per_s), wake_s until the last one finished its next step, wake_peak_rss_mb "
        "the engine's peak RSS meanwhile, wake_peak_queued the most tasks queued (not leased) at once; 2 worker "
        "processes"
    )
    if copies:
        notes += (
            f"; in each wave {count - copies:,} started through the API (half before, half after the copies) and "
            f"{copies:,} are copies of one's store rows written with the engine stopped, which then started again "
            "on them (create_s includes the copying and that restart)"
        )
    return figures, notes


def peak_rss(pid: int, *, every_s: float = 0.5) -> contextlib.AbstractContextManager[list[float]]:
    """Sample a process tree's RSS in a thread while the block runs; the peak in MB, as [peak]."""
    return peak_of(lambda: process_tree_rss_mb(pid), every_s=every_s)


@contextlib.contextmanager
def peak_of(measure: Callable[[], float], *, every_s: float = 0.5) -> Iterator[list[float]]:
    """Sample ``measure`` in a thread while the block runs; its peak, as [peak]."""
    peak = [measure()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every_s):
            peak[0] = max(peak[0], measure())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def recovery(store_url: str, sizes: Sizes, work: Path) -> tuple[dict[str, Any], str]:
    count = sizes.recovering
    budget_s = 10 + count / 250
    wake_at_ms = int((time.time() + budget_s) * 1000)
    dev = DevEngine(store_url)
    dev.start()
    try:
        with workers(dev.address, 2):
            history = History(store_url)
            with Client(address=dev.address) as client:
                client.apply_workflow("recover", {"taskQueue": "bench", "timeline": ["nap", "s1"]})
            asyncio.run(start_many(dev.address, "recover", [{"wakeAt": wake_at_ms}] * count, concurrency=128))
            wait_until(lambda: history.count_phase("Sleeping") + history.count_phase("Succeeded") >= count, 1800)
            asleep = history.count_phase("Sleeping")
            time.sleep(max(0.0, wake_at_ms / 1000 - time.time() - 1.0))
            dev.kill()  # SIGKILL, one second before they are due
            killed_with = count - history.count_phase("Succeeded")
            time.sleep(max(0.0, wake_at_ms / 1000 - time.time() + 1.0))
            dev.start()  # same address: the workers reconnect by themselves
            ready_s = time.monotonic() - dev.spawned_at
            wait_until(lambda: history.count_phase("Succeeded") >= count, timeout=1800)
            recover_s = time.monotonic() - dev.spawned_at
            history.close()
    finally:
        dev.stop()
    figures = {
        "executions": count,
        "recover_s": round(recover_s, 2),
        "engine_ready_s": round(ready_s, 2),
        "in_flight_at_kill": killed_with,
    }
    notes = (
        f"{killed_with} executions in flight ({asleep} asleep once all had started) when the engine was SIGKILLed "
        "a second before their timers; restarted a second after; recover_s from the new process's spawn until "
        "every one finished its next step; the 2 workers kept running and reconnected with their backoff"
    )
    return figures, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", choices=SCENARIOS, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--size", type=int, default=None, help="override the scenario's main size")
    parser.add_argument("--code", action="store_true", help="the workflows as code (latency, throughput, fanout)")
    parser.add_argument(
        "--api-starts",
        type=int,
        default=None,
        help="hibernation on SQLite: only this many sleepers start through the API, the rest are copies of one's rows",
    )
    args = parser.parse_args()
    CODE["on"] = args.code
    if args.code and args.scenario not in CODE_SCENARIOS:
        parser.error(f"--code measures {', '.join(CODE_SCENARIOS)}")
    sizes = Sizes.of(quick=args.quick)
    if args.size is not None:
        field_name = {
            "latency": "latency_steps",
            "throughput": "executions",
            "fanout": "fanout",
            "map": "map_items",
            "hibernation": "hibernating",
            "recovery": "recovering",
            "code-scale": "recovering",
            "flow-control": "executions",
        }[args.scenario]
        sizes = replace(sizes, **{field_name: args.size})
    work = Path(tempfile.mkdtemp(prefix="cerebelum-bench-"))
    label = "SQLite (file, WAL, synchronous=NORMAL)" if args.store == "sqlite" else "PostgreSQL (fsync on)"
    with store(args.store, args.postgres_url, work) as url:
        if args.scenario == "hibernation":
            with store(args.store, args.postgres_url, work) as second:
                figures, notes = hibernation(url, sizes, work, second_store=second, api_starts=args.api_starts)
        else:
            figures, notes = {
                "latency": latency,
                "throughput": throughput,
                "fanout": fanout,
                "map": fan_map,
                "recovery": recovery,
                "code-scale": code_scale,
                "flow-control": flow_control,
            }[args.scenario](url, sizes, work)
    if args.code:
        notes += "; the workflow is code a worker runs (workflow tasks, replayed from the history when not cached)"
    Result(f"{SYSTEM} code" if args.code else SYSTEM, _version(), label, args.scenario, figures, notes).write(args.out)
    return 0


def _version() -> str:
    from importlib.metadata import version

    return f"cerebelum-operator {version('cerebelum-operator')}"


if __name__ == "__main__":
    raise SystemExit(main())
