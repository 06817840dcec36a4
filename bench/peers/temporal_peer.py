"""Temporal peer runner: the bench/README.md scenarios on the Temporal dev server, one JSON result.

    python bench/peers/temporal_peer.py --scenario latency --out result.json [--quick]

The server is `temporal server start-dev` (built from source by install-temporal.sh, since release
binaries cannot be downloaded here) on a SQLite file in a temp dir, with its durable defaults.
Workers are separate processes (`temporal_peer.py --worker`) running the temporalio SDK's Worker
with the workflows of temporal_workflows.py. Every figure that the README defines from the
system's own history is read from Temporal's event history (event times are the server's clock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from temporal_workflows import (  # noqa: E402
    TASK_QUEUE,
    FanoutWorkflow,
    MapWorkflow,
    SequenceWorkflow,
    SleepPlan,
    SleepWorkflow,
    serve,
)
from temporalio.api.enums.v1 import DescribeTaskQueueMode, EventType, TaskQueueType  # noqa: E402
from temporalio.api.taskqueue.v1 import TaskQueue  # noqa: E402
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeTaskQueueRequest  # noqa: E402
from temporalio.client import Client, WorkflowHistory  # noqa: E402

INSTALL_SCRIPT = HERE / "install-temporal.sh"
SCENARIOS = ("latency", "throughput", "fanout", "map", "hibernation", "recovery", "kubernetes")
WARMUP_STEPS = 10
START_CONCURRENCY = 200  # start requests in flight at once when creating many executions
HISTORY_CONCURRENCY = 100  # history reads in flight at once (after a measurement)
ASLEEP_READERS = 4  # history reads in flight at once while waiting for executions to fall asleep
STEP_COMPLETED = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
TIMER_STARTED = EventType.EVENT_TYPE_TIMER_STARTED
EXECUTION_STARTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
EXECUTION_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


@dataclass(frozen=True)
class Sizes:
    """The scenario sizes of bench/README.md, full or quick."""

    latency_steps: int
    throughput_executions: int
    throughput_steps: int
    throughput_workers: int
    fanout_steps: int
    map_items: int
    hibernation_executions: int
    recovery_executions: int
    sleepers_workers: int  # worker processes for hibernation and recovery (the README leaves it open)


# Hibernation and recovery run 5,000 executions, not the README's 100,000 and 10,000. The dev server
# puts every read and write through one SQLite connection; on this 2-core machine it took about 11
# executions a second through one step into their sleep, so 100,000 would take hours a wave, while
# 5,000 takes about 8 minutes for wave 1 and 15 for wave 2. At 10,000 the recovery collapsed: after
# the restart, with 10,000 timers due at once, the server's store calls missed their deadlines by
# the tens of thousands and were retried, and it completed about one execution a second (10,000 is
# more than the dev server's 8,096-entry mutable-state cache, which may be why; another benchmark
# was loading the machine too). The figures' `executions` says which N was run.
FULL = Sizes(200, 200, 10, 4, 100, 1_000, 5_000, 5_000, 2)
QUICK = Sizes(20, 20, 3, 2, 10, 20, 200, 100, 1)


@dataclass
class Outcome:
    """A scenario's figures and the one-sentence note on how they were measured."""

    figures: dict[str, float | int]
    notes: str


# --------------------------------------------------------------------------------------------------
# Processes: every child gets its own process group (so the server's whole tree can be killed at
# once) and dies with the runner (PR_SET_PDEATHSIG), so no server or worker outlives a killed run.

_CHILDREN: list[subprocess.Popen[bytes]] = []


def _dying_with_parent(argv: list[str]) -> list[str]:
    """`argv` under util-linux's setpriv, which has the kernel SIGKILL it when this process's forking
    thread dies, so nothing leaks; no Python runs between fork and exec (a preexec_fn there can
    abort or deadlock once gRPC's threads run in the parent)."""
    return ["setpriv", "--pdeathsig", "KILL", "--", *argv]


def spawn(command: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a child in its own session, its output in `log` (kept for error messages)."""
    with log.open("ab") as sink:
        process = subprocess.Popen(
            _dying_with_parent(list(command)),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _CHILDREN.append(process)
    return process


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Send `signum` to the child's whole process group (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def stop(process: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
    """SIGTERM the child's group, then SIGKILL it if it is still there after `grace` seconds."""
    if process.returncode is not None:
        return  # reaped earlier: its group id may have been reused by a process we did not start
    if process.poll() is None:
        signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    signal_group(process, signal.SIGKILL)  # also kills any grandchild left in the group
    process.wait()


def stop_all_children() -> None:
    """Last-resort cleanup in the runner's `finally`: nothing it started may be left running."""
    for process in reversed(_CHILDREN):
        stop(process, grace=5.0)


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 20) -> str:
    """The end of a log file, for error messages that say why a child failed."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def tree_rss_bytes(root: int) -> int:
    """Resident memory of `root` and all its descendants, summed from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += _rss_bytes(pid)
        pending.extend(children.get(pid, []))
    return total


def _rss_bytes(pid: int) -> int:
    """VmRSS of one process (0 if it is gone or is a kernel thread)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# --------------------------------------------------------------------------------------------------
# The Temporal dev server and the worker processes.


def install_temporal() -> Path:
    """Build (once, cached) the temporal CLI with install-temporal.sh and return the binary's path."""
    completed = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], stdout=subprocess.PIPE, stderr=None, text=True, check=False
    )
    lines = [line for line in completed.stdout.splitlines() if line.strip()]
    if completed.returncode != 0 or not lines:
        raise SystemExit(
            f"temporal_peer: building the temporal CLI failed ({INSTALL_SCRIPT.name} exited"
            f" {completed.returncode}); it needs Go and the Go module proxy, see the output above"
        )
    binary = Path(lines[-1])
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"temporal_peer: {INSTALL_SCRIPT.name} printed {binary}, which is not an executable")
    return binary


def describe_versions(binary: Path) -> str:
    """'CLI x, server y, temporalio z' from `temporal --version` and the installed SDK."""
    output = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"version ([^\s(]+) \(Server ([^,\s)]+)", output)
    cli, server = match.groups() if match else (output.strip() or "unknown", "unknown")
    return f"CLI {cli}, server {server}, temporalio {package_version('temporalio')}"


@dataclass
class DevServer:
    """`temporal server start-dev` on a SQLite file; it can be SIGKILLed and restarted on the same file and port."""

    binary: Path
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def database(self) -> Path:
        return self.directory / "temporal.db"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def spawn(self) -> float:
        """Start the server and return the epoch time of the spawn (recovery measures from it)."""
        command = [
            str(self.binary),
            *("server", "start-dev", "--headless"),
            *("--db-filename", str(self.database)),
            *("--ip", "127.0.0.1", "--port", str(self.port)),
            *("--log-level", "error"),
        ]
        spawned = time.time()
        self.process = spawn(command, self.log)
        return spawned

    def kill(self) -> None:
        """SIGKILL the server's whole process group, as a crash would, and reap it."""
        if self.process is not None:
            signal_group(self.process, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """Stop the server for good (SIGTERM, then SIGKILL)."""
        if self.process is not None:
            stop(self.process)

    def rss_bytes(self) -> int:
        """Resident memory of the server's process tree."""
        return tree_rss_bytes(self.process.pid) if self.process is not None else 0

    def store_bytes(self) -> int:
        """Bytes of the SQLite store on disk: the database and its -journal/-wal/-shm files."""
        return sum(path.stat().st_size for path in self.directory.glob("temporal.db*"))

    async def connect(self, *, within: float = 120.0) -> Client:
        """Wait until the server serves the default namespace, and return a client of it."""
        deadline = time.monotonic() + within
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"temporal dev server exited with {self.process.returncode}:\n{tail(self.log)}")
            try:
                client = await asyncio.wait_for(Client.connect(self.address), timeout=5)
                await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
                return client
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


def spawn_workers(server: DevServer, count: int) -> list[tuple[str, subprocess.Popen[bytes]]]:
    """Start `count` worker processes for the server's task queue; return (identity, process) pairs."""
    workers = []
    for index in range(count):
        identity = f"bench-worker-{index}"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            *("--worker", "--address", server.address, "--identity", identity),
        ]
        workers.append((identity, spawn(command, server.directory / f"{identity}.log")))
    return workers


async def wait_for_pollers(client: Client, workers: Sequence[tuple[str, subprocess.Popen[bytes]]]) -> None:
    """Wait until every worker polls both the workflow and the activity task queue, so none starts late.

    The enhanced describe call is used because it reports the pollers of every partition of the
    task queue; the legacy one reports only the root partition, which a worker's polls may miss.
    """
    wanted = {identity for identity, _ in workers}
    kinds = [TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY]
    request = DescribeTaskQueueRequest(
        namespace="default",
        task_queue=TaskQueue(name=TASK_QUEUE),
        api_mode=DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED,
        task_queue_types=kinds,
        report_pollers=True,
    )
    deadline = time.monotonic() + 60
    while True:
        response = await client.workflow_service.describe_task_queue(request)
        seen: dict[int, set[str]] = {int(kind): set() for kind in kinds}
        for version in response.versions_info.values():
            for kind, info in version.types_info.items():
                seen.setdefault(kind, set()).update(poller.identity for poller in info.pollers)
        if all(wanted <= seen[kind] for kind in kinds):
            return
        for identity, process in workers:
            if process.poll() is not None:
                raise RuntimeError(f"worker {identity} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers did not all poll within 60 s: {sorted(wanted)} vs {seen}")
        await asyncio.sleep(0.2)


@dataclass
class Environment:
    """A running dev server, a client of it and its worker processes."""

    server: DevServer
    client: Client
    workers: list[tuple[str, subprocess.Popen[bytes]]]


@contextlib.asynccontextmanager
async def environment(binary: Path, *, workers: int) -> AsyncIterator[Environment]:
    """A fresh server on a fresh SQLite file with `workers` workers polling; all stopped and removed after."""
    directory = Path(tempfile.mkdtemp(prefix="temporal-bench-"))
    server = DevServer(binary, directory)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        server.spawn()
        client = await server.connect()
        processes = spawn_workers(server, workers)
        await wait_for_pollers(client, processes)
        yield Environment(server, client, processes)
    finally:
        for _, process in processes:
            stop(process, grace=5.0)
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Reading Temporal's history.


def event_times(history: WorkflowHistory, kind: int) -> list[float]:
    """Epoch seconds (server clock) of every event of `kind` in a history, in history order."""
    return [
        event.event_time.seconds + event.event_time.nanos / 1e9 for event in history.events if event.event_type == kind
    ]


def incidents(histories: Iterable[WorkflowHistory]) -> str:
    """A note on timed-out or failed tasks in the histories: they mean retries, which the figures include."""
    kinds = {
        EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "step timeouts",
        EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT: "workflow-task timeouts",
        EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED: "workflow-task failures",
    }
    counts = dict.fromkeys(kinds, 0)
    for history in histories:
        for event in history.events:
            if event.event_type in counts:
                counts[event.event_type] += 1
    found = [f"{count} {kinds[kind]}" for kind, count in counts.items() if count]
    return f" The histories show {', '.join(found)}." if found else " No task timed out or failed."


async def fetch_histories(client: Client, ids: Iterable[str]) -> list[WorkflowHistory]:
    """The full histories of many executions, a bounded number of reads in flight."""
    gate = asyncio.Semaphore(HISTORY_CONCURRENCY)

    async def one(workflow_id: str) -> WorkflowHistory:
        async with gate:
            return await client.get_workflow_handle(workflow_id).fetch_history()

    return await asyncio.gather(*(one(workflow_id) for workflow_id in ids))


async def start_many(client: Client, ids: Sequence[str], plan: SleepPlan) -> float:
    """Start one SleepWorkflow per id (bounded concurrency); return the seconds it took."""
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def one(workflow_id: str) -> None:
        async with gate:
            await client.start_workflow(SleepWorkflow.run, plan, id=workflow_id, task_queue=TASK_QUEUE)

    began = time.perf_counter()
    await asyncio.gather(*(one(workflow_id) for workflow_id in ids))
    return time.perf_counter() - began


async def wait_until_asleep(client: Client, ids: Sequence[str], *, deadline: float) -> set[str]:
    """Wait until every execution's history has a TimerStarted event (or the epoch `deadline`); return the awake.

    A few readers walk the executions in start order and re-read one only while it is still awake,
    so the check adds a handful of reads at a time to the server it measures (whose SQLite store has
    one connection for everything), not N reads a second.
    """
    remaining = iter(ids)
    awake: set[str] = set()

    async def reader() -> None:
        for workflow_id in remaining:
            handle = client.get_workflow_handle(workflow_id)
            while not event_times(await handle.fetch_history(), TIMER_STARTED):
                if time.time() >= deadline:
                    awake.add(workflow_id)
                    break
                await asyncio.sleep(1.0)

    await asyncio.gather(*(reader() for _ in range(ASLEEP_READERS)))
    return awake


async def wait_until_completed(client: Client, count: int, *, within: float) -> None:
    """Poll visibility until `count` SleepWorkflows are Completed (errors while a server restarts are retried)."""
    query = "WorkflowType = 'SleepWorkflow' AND ExecutionStatus = 'Completed'"
    deadline = time.monotonic() + within
    reported = time.monotonic()
    while time.monotonic() < deadline:
        done = -1
        with contextlib.suppress(Exception):
            done = (await client.count_workflows(query)).count
        if done >= count:
            return
        if time.monotonic() - reported > 30:
            progress(f"{max(done, 0)} of {count} completed")
            reported = time.monotonic()
        await asyncio.sleep(1.0)
    raise RuntimeError(f"not all {count} executions completed within {within:.0f} s")


def progress(message: str) -> None:
    """A timestamped line on stderr, so a long run shows where it is."""
    print(f"temporal_peer {time.strftime('%H:%M:%S')}: {message}", file=sys.stderr, flush=True)


async def sleep_until(epoch: float) -> None:
    """Sleep until the wall clock reads `epoch`."""
    await asyncio.sleep(max(0.0, epoch - time.time()))


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Percentile by linear interpolation between closest ranks (the 'inclusive' method)."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[round(fraction * 100) - 1]


# --------------------------------------------------------------------------------------------------
# Scenarios.


async def warm_up(client: Client) -> None:
    """One short execution first, so connection set-up and the worker's first imports are not measured."""
    await client.execute_workflow(SequenceWorkflow.run, WARMUP_STEPS, id="warm-up", task_queue=TASK_QUEUE)


async def latency(binary: Path, sizes: Sizes) -> Outcome:
    """One execution of N sequential no-op activities; gaps between consecutive ActivityTaskCompleted events."""
    steps = sizes.latency_steps
    async with environment(binary, workers=1) as env:
        await warm_up(env.client)
        handle = await env.client.start_workflow(SequenceWorkflow.run, steps, id="latency", task_queue=TASK_QUEUE)
        await handle.result()
        history = await handle.fetch_history()
    completions = event_times(history, STEP_COMPLETED)
    gaps = [(later - earlier) * 1000 for earlier, later in itertools.pairwise(completions)]
    figures = {
        "p50_ms": round(percentile(gaps, 0.50), 3),
        "p99_ms": round(percentile(gaps, 0.99), 3),
        "samples": len(gaps),
    }
    notes = (
        f"One workflow of {steps} sequential no-op activities on 1 worker process, after a {WARMUP_STEPS}-step warm-up"
        " workflow; step-to-step time is the gap between consecutive ActivityTaskCompleted event times in its history."
        + incidents([history])
    )
    return Outcome(figures, notes)


async def throughput(binary: Path, sizes: Sizes) -> Outcome:
    """E concurrent executions of S sequential no-op activities on W worker processes."""
    executions, steps, workers = sizes.throughput_executions, sizes.throughput_steps, sizes.throughput_workers
    async with environment(binary, workers=workers) as env:
        await warm_up(env.client)
        began = time.perf_counter()
        handles = await asyncio.gather(
            *(
                env.client.start_workflow(SequenceWorkflow.run, steps, id=f"throughput-{index}", task_queue=TASK_QUEUE)
                for index in range(executions)
            )
        )
        await asyncio.gather(*(handle.result() for handle in handles))
        wall = time.perf_counter() - began
        histories = await fetch_histories(env.client, [handle.id for handle in handles])
    first = min(event_times(history, EXECUTION_STARTED)[0] for history in histories)
    last = max(event_times(history, EXECUTION_COMPLETED)[0] for history in histories)
    total = executions * steps
    figures = {
        "steps_per_s": round(total / (last - first), 1),
        "wall_steps_per_s": round(total / wall, 1),
        "executions": executions,
        "steps": steps,
        "total_steps": total,
        "workers": workers,
    }
    notes = (
        f"{executions} workflows x {steps} sequential no-op activities, all started at once then awaited, on {workers}"
        " worker processes after a warm-up workflow; steps/s from the first WorkflowExecutionStarted to the last"
        " WorkflowExecutionCompleted event time, wall figure from the first start request to the last result."
        + incidents(histories)
    )
    return Outcome(figures, notes)


async def fanout(binary: Path, sizes: Sizes) -> Outcome:
    """One execution running N no-op activities in parallel; wall time from start request to result."""
    steps = sizes.fanout_steps
    async with environment(binary, workers=1) as env:
        await warm_up(env.client)
        began = time.perf_counter()
        handle = await env.client.start_workflow(FanoutWorkflow.run, steps, id="fanout", task_queue=TASK_QUEUE)
        await handle.result()
        wall = time.perf_counter() - began
        history = await handle.fetch_history()
    recorded = event_times(history, EXECUTION_COMPLETED)[0] - event_times(history, EXECUTION_STARTED)[0]
    figures = {"wall_ms": round(wall * 1000, 1), "steps": steps}
    notes = (
        f"One workflow awaiting {steps} no-op activities scheduled at once (asyncio.gather) on 1 worker process"
        f" (max 100 concurrent activities), after a warm-up workflow; wall time from the start request to the result"
        f" (the history's start-to-completion span was {recorded * 1000:.1f} ms)." + incidents([history])
    )
    return Outcome(figures, notes)


async def fan_map(binary: Path, sizes: Sizes) -> Outcome:
    """One execution: an activity returns N items, then one no-op activity per item in parallel; wall time."""
    count = sizes.map_items
    async with environment(binary, workers=1) as env:
        await warm_up(env.client)
        began = time.perf_counter()
        handle = await env.client.start_workflow(MapWorkflow.run, count, id="map", task_queue=TASK_QUEUE)
        ran = await handle.result()
        wall = time.perf_counter() - began
        history = await handle.fetch_history()
    if ran != count or len(event_times(history, STEP_COMPLETED)) != count + 1:
        raise RuntimeError(f"the map workflow did not run its list step and {count} item activities")
    recorded = event_times(history, EXECUTION_COMPLETED)[0] - event_times(history, EXECUTION_STARTED)[0]
    figures = {"wall_ms": round(wall * 1000, 1), "items": count}
    notes = (
        f"One workflow running an activity that returns a list of {count} items, then one no-op activity per item"
        f" scheduled at once (asyncio.gather) on 1 worker process (max 100 concurrent activities), after a warm-up"
        f" workflow; wall time from the start request to the result (the history's start-to-completion span was"
        f" {recorded * 1000:.1f} ms)." + incidents([history])
    )
    return Outcome(figures, notes)


async def hibernation(binary: Path, sizes: Sizes) -> Outcome:
    """Two waves in fresh servers: N executions asleep for a day (memory, store), then N waking at one instant."""
    count, workers = sizes.hibernation_executions, sizes.sleepers_workers
    ids = [f"sleeper-{index}" for index in range(count)]
    async with environment(binary, workers=workers) as env:
        began = time.time()
        create_s = await start_many(
            env.client, ids, SleepPlan(step_before=True, wake_at=began + 86_400, step_after=False)
        )
        progress(f"wave 1: {count} started in {create_s:.1f} s")
        awake = await wait_until_asleep(env.client, ids, deadline=began + 3_600)
        if awake:
            raise RuntimeError(f"{len(awake)} of {count} executions were not asleep after an hour")
        asleep_s = time.time() - began
        await asyncio.sleep(5)  # let the last writes and the server's bookkeeping settle before measuring
        rss, store = env.server.rss_bytes(), env.server.store_bytes()
        progress(f"wave 1: all asleep after {asleep_s:.0f} s; RSS {rss / 2**20:.0f} MiB, store {store / 2**20:.1f} MiB")
    async with environment(binary, workers=workers) as env:
        lead_s = 1.3 * asleep_s + 20
        wake_at = time.time() + lead_s
        started_s = await start_many(env.client, ids, SleepPlan(step_before=False, wake_at=wake_at, step_after=True))
        progress(f"wave 2: {count} started in {started_s:.1f} s; they wake in {wake_at - time.time():.0f} s")
        await sleep_until(wake_at)
        await wait_until_completed(env.client, count, within=7_200)
        histories = await fetch_histories(env.client, ids)
    late = sum(1 for history in histories if not [at for at in event_times(history, TIMER_STARTED) if at < wake_at])
    wake_s = max(max(event_times(history, STEP_COMPLETED)) for history in histories) - wake_at
    figures = {
        "executions": count,
        "rss_mb": round(rss / 2**20, 1),
        "store_mb": round(store / 2**20, 1),
        "create_s": round(create_s, 2),
        "wake_s": round(wake_s, 2),
    }
    notes = (
        f"{count} workflows (one no-op activity, then workflow.sleep of a day) on {workers} worker process(es), started"
        f" {START_CONCURRENCY} at a time (create_s: first start request to last acknowledged; all had a TimerStarted"
        f" event after {asleep_s:.0f} s); RSS of the dev server process tree and size of temporal.db* then; wave 2 in a"
        f" fresh server: {count} workflows sleeping until a shared wake_at {lead_s:.0f} s after"
        f" their first start request, then one activity ({late} had not started their timer before wake_at);"
        " wake_s = last ActivityTaskCompleted - wake_at." + incidents(histories)
    )
    return Outcome(figures, notes)


async def calibrate(client: Client) -> float:
    """Executions per second the server and workers take in: a batch of two-step workflows, started and awaited."""
    batch = 100
    began = time.perf_counter()
    handles = await asyncio.gather(
        *(
            client.start_workflow(SequenceWorkflow.run, 2, id=f"calibration-{index}", task_queue=TASK_QUEUE)
            for index in range(batch)
        )
    )
    await asyncio.gather(*(handle.result() for handle in handles))
    return batch / (time.perf_counter() - began)


async def recovery(binary: Path, sizes: Sizes) -> Outcome:
    """N executions of s1 -> sleep until T -> s2; SIGKILL the server once all sleep, restart it after T."""
    count, workers = sizes.recovery_executions, sizes.sleepers_workers
    ids = [f"recovering-{index}" for index in range(count)]
    async with environment(binary, workers=workers) as env:
        rate = await calibrate(env.client)
        wake_at = time.time() + 1.5 * count / rate + 20
        progress(f"calibration: {rate:.1f} two-step executions/s; T is in {wake_at - time.time():.0f} s")
        began = time.time()
        await start_many(env.client, ids, SleepPlan(step_before=True, wake_at=wake_at, step_after=True))
        awake = await wait_until_asleep(env.client, ids, deadline=wake_at - 2)
        if awake:
            raise RuntimeError(f"{len(awake)} of {count} executions were not asleep before T; T was chosen too early")
        progress(f"all {count} asleep after {time.time() - began:.0f} s, {wake_at - time.time():.0f} s before T")
        await sleep_until(wake_at - 1)
        env.server.kill()
        await sleep_until(wake_at + 0.5)
        spawned = env.server.spawn()
        progress("server SIGKILLed and restarted")
        await wait_until_completed(env.client, count, within=7_200)
        histories = await fetch_histories(env.client, ids)
    if any(len(event_times(history, STEP_COMPLETED)) != 2 for history in histories):
        raise RuntimeError("an execution did not record exactly two completed steps")
    recover_s = max(max(event_times(history, STEP_COMPLETED)) for history in histories) - spawned
    notes = (
        f"{count} workflows (activity s1, workflow.sleep until a shared T, activity s2) on {workers} worker"
        " process(es); once all had a TimerStarted event the dev server's process group was SIGKILLed 1 s before T and"
        " restarted on the same SQLite file 0.5 s after T, the worker processes kept running and reconnected;"
        " recover_s = last s2 ActivityTaskCompleted - restart spawn (T was chosen from a 100-execution two-step"
        " calibration batch run first)." + incidents(histories)
    )
    return Outcome({"executions": count, "recover_s": round(recover_s, 2)}, notes)


RUNNERS: dict[str, Callable[[Path, Sizes], Any]] = {
    "latency": latency,
    "throughput": throughput,
    "fanout": fanout,
    "map": fan_map,
    "hibernation": hibernation,
    "recovery": recovery,
}


# --------------------------------------------------------------------------------------------------
# Command line.


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The runner's command line (bench/README.md), plus the internal `--worker` mode."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=SCENARIOS)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="the README's quick sizes")
    parser.add_argument(
        "--store", choices=["sqlite"], default="sqlite", help="the dev server runs on SQLite only (no PostgreSQL)"
    )
    parser.add_argument("--executions", type=int, help="override N for hibernation and recovery")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--identity", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker and not (args.address and args.identity):
        parser.error("--worker needs --address and --identity")
    if not args.worker and (args.scenario is None or args.out is None):
        parser.error("--scenario and --out are required")
    return args


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit so `finally` blocks stop the server and workers."""
    raise SystemExit(128 + signum)


def run_scenario(args: argparse.Namespace) -> dict[str, Any]:
    """Run the chosen scenario and return the result object of the contract."""
    result: dict[str, Any] = {
        "system": "Temporal",
        "version": f"temporalio {package_version('temporalio')}",
        "store": "SQLite (file)",
        "scenario": args.scenario,
        "figures": {},
        "notes": "",
        "unsupported": None,
    }
    if args.scenario == "kubernetes":
        result["unsupported"] = (
            "Temporal has no Kubernetes operator that runs workflows as API objects to compare with."
        )
        return result
    binary = install_temporal()
    result["version"] = describe_versions(binary)
    sizes = QUICK if args.quick else FULL
    if args.executions:
        sizes = dataclasses.replace(sizes, hibernation_executions=args.executions, recovery_executions=args.executions)
    began = time.perf_counter()
    outcome: Outcome = asyncio.run(RUNNERS[args.scenario](binary, sizes))
    result["figures"] = outcome.figures
    result["notes"] = outcome.notes
    print(
        f"temporal_peer: {args.scenario} took {time.perf_counter() - began:.0f} s: {outcome.figures}", file=sys.stderr
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: a benchmark run, or (internally) one worker process."""
    args = parse_arguments(argv)
    if args.worker:
        asyncio.run(serve(args.address, args.identity))
        return 0
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        result = run_scenario(args)
    finally:
        stop_all_children()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
