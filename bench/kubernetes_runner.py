"""Kubernetes-mode runner: the throughput shape driven through `cerebelum operator` on a real API server.

    python bench/kubernetes_runner.py --scenario kubernetes --out result.json [--quick]
        [--executions E --steps S --workers W] [--create parallel|kubectl] [--profile DIR [--native]]

It starts what tests/kube starts (etcd + kube-apiserver with an audit log, the CRDs, the Helm
chart's ServiceAccount and RBAC, a fresh namespace), then `cerebelum operator` as that
ServiceAccount with its production defaults (--status-interval, --api-qps) on a SQLite file in a
temp dir, and W no-op worker processes (bench/noop_worker.py). It creates a Workflow of S
sequential no-op steps, then E Executions of it over 8 API connections at once (or, with
--create kubectl, all in one `kubectl apply` as tests/kube/test_scale.py does, which creates them
one by one), and waits until every Execution shows phase Succeeded in the API.

Figures: steps/s from the engine's own history (first ExecutionStarted to last
ExecutionSucceeded, read from the store's `events` table), the wall-clock figure from the first
create to all Succeeded in the API, and the operator's API writes counted from the API server's audit
log (every write of the operator's ServiceAccount in the namespace), as tests/kube/test_scale.py
counts them. CPU seconds per process (operator, kube-apiserver, etcd, workers) over the run come
from /proc. With --profile DIR, py-spy samples the operator over the run (raw collapsed stacks).
Everything it starts is stopped on exit; the child processes also die with it (PDEATHSIG).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import process_tree_cpu_s  # noqa: E402
from tests.support.control_plane import ControlPlane, ensure_binaries  # noqa: E402
from tests.support.kube import (  # noqa: E402
    OPERATOR_USER,
    apply_yaml,
    audit_args,
    audited_writes,
    install_operator_rbac,
    service_account_kubeconfig,
)
from tests.support.processes import OperatorProcess  # noqa: E402

CRDS = ROOT / "crds"
WORKER_SCRIPT = HERE / "noop_worker.py"
TASK_QUEUE = "bench"  # what noop_worker.py serves
FULL = (200, 10, 4)  # executions, steps per execution, workers
QUICK = (20, 3, 2)
RUN_TIMEOUT_S = 900.0
CREATE_CONCURRENCY = 8  # connections creating Executions at once
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Start the no-op worker with INFO logging, so its start-up line says when it is ready.
READY_LINE = " serving task queue "  # the SDK's start-up line, logged as its pollers start
_WORKER_BOOT = (
    "import logging, runpy, sys; logging.basicConfig(level=logging.INFO);"
    " runpy.run_path(sys.argv[1], run_name='__main__')"
)


class BenchError(RuntimeError):
    """The run could not be carried out (a process died, a deadline passed)."""


def _dying_with_parent(argv: list[str]) -> list[str]:
    """`argv` under util-linux's setpriv, which has the kernel SIGKILL it when this process's forking
    thread dies, so nothing leaks; no Python runs between fork and exec (a preexec_fn there can
    abort or deadlock once gRPC's threads run in the parent)."""
    return ["setpriv", "--pdeathsig", "KILL", "--", *argv]


@dataclass
class _Operator(OperatorProcess):
    """The tests' OperatorProcess, but killed with the runner even if the runner is SIGKILLed."""

    def launch(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                _dying_with_parent([sys.executable, *self.command()]),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=self.environment(),
            )
        self.starts += 1

    def start(self) -> None:
        self.launch()
        self.wait_serving()

    def wait_serving(self) -> None:
        """Until it serves gRPC; BenchError if it exits or 60 s pass first."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BenchError(f"the operator exited ({self.process.returncode}):\n{self.log_tail()}")
            if self.serving(timeout=1):
                return
        raise BenchError(f"the operator did not serve gRPC within 60 s:\n{self.log_tail()}")

    def stop(self) -> None:
        super().stop()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else "(no log)"


# -- processes and CPU -------------------------------------------------------------------------


def _cpu_seconds(pid: int, tid: int | None = None) -> float:
    """utime + stime of a process (all its threads), or of its thread `tid`, in seconds; 0 once gone."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


def _own_cpu_seconds() -> float:
    """This runner's CPU seconds, with its waited-for children (the kubectl calls)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _children_of_self() -> dict[int, str]:
    """This process's direct children: pid -> comm."""
    found: dict[int, str] = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            for pid in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    found[int(pid)] = Path(f"/proc/{pid}/comm").read_text().strip()
    return found


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass
class CpuMeter:
    """CPU seconds per role over an interval: {role: [pids]} sampled at start and at stop."""

    roles: dict[str, list[int]]
    main_thread_of: int | None = None  # also measure this process's main thread on its own
    # Roles measured as a whole process tree, reaped children included (a PostgreSQL server's backends).
    trees: dict[str, int] = field(default_factory=dict)
    main_thread: tuple[float, float] = (0.0, 0.0)
    before: dict[int, float] = field(default_factory=dict)
    after: dict[int, float] = field(default_factory=dict)
    trees_before: dict[str, float] = field(default_factory=dict)
    trees_after: dict[str, float] = field(default_factory=dict)
    own_before: float = 0.0
    own_after: float = 0.0
    machine_before: tuple[float, float] = (0.0, 0.0)
    machine_after: tuple[float, float] = (0.0, 0.0)
    began: float = 0.0
    ended: float = 0.0

    def start(self) -> None:
        self.began = time.monotonic()
        self.machine_before = _machine_cpu()
        self.own_before = _own_cpu_seconds()
        self.before = {pid: _cpu_seconds(pid) for pids in self.roles.values() for pid in pids}
        self.trees_before = {role: process_tree_cpu_s(pid) for role, pid in self.trees.items()}
        if self.main_thread_of is not None:
            self.main_thread = (_cpu_seconds(self.main_thread_of, self.main_thread_of), 0.0)

    def stop(self) -> None:
        self.after = {pid: _cpu_seconds(pid) for pids in self.roles.values() for pid in pids}
        self.trees_after = {role: process_tree_cpu_s(pid) for role, pid in self.trees.items()}
        if self.main_thread_of is not None:
            self.main_thread = (self.main_thread[0], _cpu_seconds(self.main_thread_of, self.main_thread_of))
        self.own_after = _own_cpu_seconds()
        self.machine_after = _machine_cpu()
        self.ended = time.monotonic()

    def seconds(self) -> dict[str, float]:
        """CPU seconds per role, plus this runner with its kubectl calls, plus every other process."""
        spent = {
            role: sum(self.after.get(pid, 0.0) - self.before.get(pid, 0.0) for pid in pids)
            for role, pids in self.roles.items()
        }
        spent |= {role: self.trees_after.get(role, 0.0) - self.trees_before.get(role, 0.0) for role in self.trees}
        spent["runner"] = self.own_after - self.own_before
        machine = self.machine_after[0] - self.machine_before[0]
        spent["other"] = max(0.0, machine - sum(spent.values()))
        return spent

    def main_thread_seconds(self) -> float:
        return self.main_thread[1] - self.main_thread[0]

    def machine_busy_pct(self) -> float:
        """Busy share of all cores over the interval, in percent."""
        busy = self.machine_after[0] - self.machine_before[0]
        total = self.machine_after[1] - self.machine_before[1]
        return 100.0 * busy / total if total > 0 else 0.0


# -- the control plane and the operator --------------------------------------------------------


@contextlib.contextmanager
def control_plane(audit_dir: Path, parent_dir: Path) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver logging every write to audit_dir/audit.log, as tests/kube's fixture."""
    if shutil.which("kubectl") is None:
        raise BenchError("kubectl is not on PATH")
    bin_dir = ensure_binaries()  # cached under ~/.cache/cerebelum; hack/control-plane/build.sh builds it
    with ControlPlane(bin_dir, extra_apiserver_args=audit_args(audit_dir), parent_dir=str(parent_dir)) as started:
        yield started


def prepare_cluster(cp: ControlPlane) -> str:
    """CRDs Established, the chart's ServiceAccount and RBAC, a fresh namespace; its name."""
    install_cluster(cp)
    return new_namespace(cp)


def install_cluster(cp: ControlPlane) -> None:
    """CRDs Established, the chart's ServiceAccount and RBAC."""
    applied = cp.kubectl("apply", "-f", str(CRDS), "-o", "name").stdout.split()
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", *applied)
    install_operator_rbac(cp)  # renders the Helm chart (hack/control-plane/build-helm.sh builds helm)


def new_namespace(cp: ControlPlane) -> str:
    """A fresh namespace; its name."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    cp.kubectl("create", "namespace", namespace)
    return namespace


@contextlib.contextmanager
def running_operator(
    cp: ControlPlane, namespace: str, work_dir: Path, extra_args: Sequence[str] = ()
) -> Iterator[_Operator]:
    """`cerebelum operator` as the chart's ServiceAccount, watching `namespace`, default options."""
    operator = _Operator(
        database_url=f"sqlite:///{work_dir / 'operator.db'}",
        log_path=work_dir / "operator.log",
        kubeconfig=service_account_kubeconfig(cp, work_dir / "operator.kubeconfig"),
        extra_args=("--namespace", namespace, "--lease-name", f"operator-{namespace}", "--auth", "none", *extra_args),
    )
    try:
        operator.start()
        yield operator
    finally:
        operator.stop()


@contextlib.contextmanager
def running_workers(address: str, count: int, work_dir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` no-op worker processes polling `address`, each logged to work_dir/worker-N.log."""
    env = {**os.environ, "CEREBELUM_ADDRESS": address, "PYTHONUNBUFFERED": "1"}
    logs = [work_dir / f"worker-{index}.log" for index in range(count)]
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for log_path in logs:
            with log_path.open("ab") as log:
                workers.append(
                    subprocess.Popen(
                        # work_dir in the command line only names the process as this run's.
                        _dying_with_parent([sys.executable, "-c", _WORKER_BOOT, str(WORKER_SCRIPT), str(work_dir)]),
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=ROOT,
                    )
                )
        deadline = time.monotonic() + 60
        while not all(READY_LINE in path.read_text(errors="replace") for path in logs):
            for worker, path in zip(workers, logs, strict=True):
                if worker.poll() is not None:
                    raise BenchError(f"a worker exited ({worker.returncode}):\n{path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise BenchError("the workers did not start polling within 60 s")
            time.sleep(0.1)
        yield workers
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


@contextlib.contextmanager
def profiling(pid: int, out_dir: Path | None, *, native: bool = False) -> Iterator[None]:
    """py-spy samples `pid` (all threads, raw collapsed stacks) while the block runs."""
    if out_dir is None:
        yield
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / "operator.txt"
    command = [py_spy, "record", "--pid", str(pid), "-f", "raw", "-o", str(output), "--threads"]
    # --native resolves the C frames (grpc's Cython, ssl) but must pause the process for each sample.
    command += ["--native"] if native else ["--nonblocking"]
    recorder = subprocess.Popen(
        _dying_with_parent(command),
        stdout=subprocess.DEVNULL,
        stderr=(out_dir / "py-spy.log").open("ab"),
    )
    time.sleep(0.5)  # let it attach before the measured work begins
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            recorder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()


# -- the run -----------------------------------------------------------------------------------


def documents(executions: int, steps: int) -> list[dict[str, Any]]:
    """One Workflow of `steps` sequential no-op steps and `executions` Executions of it."""
    timeline = [f"s{index}" for index in range(1, steps + 1)]
    workflow = {
        "apiVersion": "cerebelum.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "throughput"},
        "spec": {"taskQueue": TASK_QUEUE, "timeline": timeline},
    }
    runs = [
        {
            "apiVersion": "cerebelum.io/v1alpha1",
            "kind": "Execution",
            "metadata": {"name": f"run-{index:04d}"},
            "spec": {"workflow": "throughput", "input": {}},
        }
        for index in range(executions)
    ]
    return [workflow, *runs]


class _ApiConnection:
    """One keep-alive HTTPS connection to the API server, as admin (the creator is not the one measured)."""

    def __init__(self, cp: ControlPlane) -> None:
        assert cp.server is not None
        assert cp.ca_file is not None
        url = urllib.parse.urlsplit(cp.server)
        context = ssl.create_default_context(cafile=str(cp.ca_file))
        self._connection = http.client.HTTPSConnection(url.hostname or "127.0.0.1", url.port, context=context)
        self._headers = {
            "Authorization": f"Bearer {cp.admin_token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def create(self, namespace: str, document: dict[str, Any]) -> None:
        plural = {"Workflow": "workflows", "Execution": "executions"}[document["kind"]]
        path = f"/apis/cerebelum.io/v1alpha1/namespaces/{namespace}/{plural}"
        self._connection.request("POST", path, body=json.dumps(document), headers=self._headers)
        response = self._connection.getresponse()
        body = response.read()
        if response.status != 201:
            raise BenchError(f"creating {document['metadata']['name']}: HTTP {response.status} {body[:500]!r}")

    def close(self) -> None:
        self._connection.close()


def create_in_parallel(cp: ControlPlane, namespace: str, manifests: list[dict[str, Any]]) -> None:
    """The Workflow, then every Execution over CREATE_CONCURRENCY keep-alive connections at once.

    One `kubectl apply` creates objects one by one (a GET and a POST each): 200 Executions take
    it about 5 s here, longer than the operator needs to run them, so it would measure kubectl.
    """
    first = _ApiConnection(cp)
    try:
        first.create(namespace, manifests[0])
    finally:
        first.close()
    runs = manifests[1:]
    shares = [runs[index::CREATE_CONCURRENCY] for index in range(CREATE_CONCURRENCY)]

    def create_share(share: list[dict[str, Any]]) -> None:
        connection = _ApiConnection(cp)
        try:
            for document in share:
                connection.create(namespace, document)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=CREATE_CONCURRENCY) as pool:
        for done in [pool.submit(create_share, share) for share in shares if share]:
            done.result()


def _store_counts(db_path: Path) -> tuple[int, int]:
    """(ExecutionSucceeded, ExecutionFailed + ExecutionCancelled) so far, read without blocking the writer."""
    if not db_path.exists():
        return 0, 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)) as db:
            rows = dict(
                db.execute(
                    "SELECT kind, COUNT(*) FROM events WHERE kind IN"
                    " ('ExecutionSucceeded', 'ExecutionFailed', 'ExecutionCancelled') GROUP BY kind"
                ).fetchall()
            )
    except sqlite3.Error:  # not migrated yet, or busy for a moment
        return 0, 0
    return int(rows.get("ExecutionSucceeded", 0)), int(
        rows.get("ExecutionFailed", 0) + rows.get("ExecutionCancelled", 0)
    )


def _api_phases(cp: ControlPlane, namespace: str) -> Counter[str]:
    """Executions per status.phase, as the API server shows them (one admin GET, no kubectl process)."""
    assert cp.ca_file is not None
    assert cp.admin_token is not None
    request = urllib.request.Request(
        f"{cp.server}/apis/cerebelum.io/v1alpha1/namespaces/{namespace}/executions",
        headers={"Authorization": f"Bearer {cp.admin_token}", "Accept": "application/json"},
    )
    context = ssl.create_default_context(cafile=str(cp.ca_file))
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        items = json.loads(response.read())["items"]
    return Counter(str((item.get("status") or {}).get("phase") or "None") for item in items)


def wait_until_succeeded(
    cp: ControlPlane,
    namespace: str,
    store_counts: Callable[[], tuple[int, int]],
    operators: Sequence[_Operator],
    executions: int,
) -> None:
    """Until every Execution shows Succeeded in the API; polls the store first, so as not to load the API.

    `store_counts` gives (succeeded, failed or cancelled) from the engine's store so far."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        for operator in operators:
            if operator.process is not None and operator.process.poll() is not None:
                raise BenchError(f"an operator exited ({operator.process.returncode}):\n{operator.log_tail()}")
        succeeded, failed = store_counts()
        if failed:
            raise BenchError(f"{failed} executions failed or were cancelled in the engine")
        if succeeded >= executions:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"only {succeeded} of {executions} executions succeeded in {RUN_TIMEOUT_S:.0f} s")
        time.sleep(0.1)
    while True:
        phases = _api_phases(cp, namespace)
        if phases["Succeeded"] == executions:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"the API shows {dict(phases)} after {RUN_TIMEOUT_S:.0f} s")
        time.sleep(0.05)


@dataclass(frozen=True)
class History:
    first_start_ms: int
    last_end_ms: int
    steps_completed: int
    events: int
    running_s: float  # the sum over executions of (their ExecutionSucceeded - their ExecutionStarted)


def read_history(db_path: Path) -> History:
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return history_of(lambda query: db.execute(query).fetchone())


def history_of(one_row: Callable[[str], Any]) -> History:
    """The History of a store, from `one_row(sql)` (the first row of a query; SQLite or PostgreSQL)."""
    first_start, last_end = one_row(
        "SELECT (SELECT MIN(at_ms) FROM events WHERE kind = 'ExecutionStarted'),"
        " (SELECT MAX(at_ms) FROM events WHERE kind = 'ExecutionSucceeded')"
    )
    (completed,) = one_row("SELECT COUNT(*) FROM events WHERE kind = 'StepCompleted'")
    (events,) = one_row("SELECT COUNT(*) FROM events")
    (running,) = one_row(
        "SELECT SUM(e.at_ms - s.at_ms) / 1000.0 FROM events s JOIN events e USING (execution_id)"
        " WHERE s.kind = 'ExecutionStarted' AND e.kind = 'ExecutionSucceeded'"
    )
    return History(int(first_start), int(last_end), int(completed), int(events), float(running or 0.0))


def _versions(cp: ControlPlane) -> str:
    server = "?"
    with contextlib.suppress(Exception):
        server = json.loads(cp.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    operator, kopf = package_version("cerebelum-operator"), package_version("kopf")
    return f"cerebelum-operator {operator}, kopf {kopf}, kube-apiserver {server}"


def run_kubernetes(
    executions: int,
    steps: int,
    workers: int,
    *,
    create: str = "parallel",
    operator_args: Sequence[str] = (),
    profile_dir: Path | None = None,
    native: bool = False,
) -> dict[str, Any]:
    """One full run; the result object of the bench/README.md contract."""
    work_dir = Path(tempfile.mkdtemp(prefix="cerebelum-bench-kube-"))
    # Every process of the run has work_dir in its command line (a test checks none is left behind).
    print(f"kubernetes runner: work dir {work_dir}", file=sys.stderr, flush=True)
    try:
        return _run(
            work_dir,
            executions,
            steps,
            workers,
            create=create,
            operator_args=operator_args,
            profile_dir=profile_dir,
            native=native,
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _run(
    work_dir: Path,
    executions: int,
    steps: int,
    workers: int,
    *,
    create: str,
    operator_args: Sequence[str],
    profile_dir: Path | None,
    native: bool,
) -> dict[str, Any]:
    audit_dir = work_dir / "audit"
    audit_log = audit_dir / "audit.log"
    with control_plane(audit_dir, work_dir) as cp:
        namespace = prepare_cluster(cp)
        with (
            running_operator(cp, namespace, work_dir, operator_args) as operator,
            running_workers(operator.address, workers, work_dir) as worker_processes,
        ):
            assert operator.process is not None
            children = _children_of_self()
            meter = CpuMeter(
                {
                    "operator": [operator.process.pid],
                    "kube-apiserver": [pid for pid, comm in children.items() if comm == "kube-apiserver"],
                    "etcd": [pid for pid, comm in children.items() if comm == "etcd"],
                    "workers": [worker.pid for worker in worker_processes],
                },
                main_thread_of=operator.process.pid,  # the event loop: kopf, status writes, gRPC, the engine
            )
            manifests = documents(executions, steps)
            db_path = work_dir / "operator.db"
            try:
                with profiling(operator.process.pid, profile_dir, native=native):
                    meter.start()
                    began = time.monotonic()
                    if create == "kubectl":
                        applied = apply_yaml(cp, yaml.safe_dump_all(manifests), namespace=namespace)
                        if applied.returncode != 0:
                            raise BenchError(f"kubectl apply failed:\n{applied.stderr[-3000:]}")
                    else:
                        create_in_parallel(cp, namespace, manifests)
                    apply_s = time.monotonic() - began
                    wait_until_succeeded(cp, namespace, lambda: _store_counts(db_path), [operator], executions)
                    wall_s = time.monotonic() - began
                    meter.stop()
            except BaseException:
                print(f"--- operator log ---\n{operator.log_tail()}", file=sys.stderr)
                raise
            if profile_dir is not None:
                shutil.copy(operator.log_path, profile_dir / "operator.log")
        # The operator has stopped: its last writes are in the audit log (blocking mode).
        history = read_history(db_path)
        writes = audited_writes(audit_log, namespace=namespace)
        version = _versions(cp)
    if history.steps_completed != executions * steps:
        raise BenchError(f"{history.steps_completed} StepCompleted events, not {executions * steps}")
    engine_s = (history.last_end_ms - history.first_start_ms) / 1000
    total_writes = sum(writes.values())
    cpu = meter.seconds()
    measured_s = max(meter.ended - meter.began, 1e-9)
    figures: dict[str, float | int] = {
        "steps_per_s": round(history.steps_completed / engine_s, 1),
        "wall_steps_per_s": round(history.steps_completed / wall_s, 1),
        "api_writes_per_s": round(total_writes / engine_s, 1),
        "api_writes_per_execution": round(total_writes / executions, 2),
        "executions": executions,
        "steps": steps,  # per execution, as the throughput scenario's runner and bench/report.py read it
        "total_steps": history.steps_completed,
        "workers": workers,
        "api_writes": total_writes,
        "status_writes": writes["patch executions/status"],
        "object_patches": writes["patch executions"],
        "events_written": writes["create events"],
        "history_events": history.events,
        "engine_s": round(engine_s, 2),
        "wall_s": round(wall_s, 2),
        "apply_s": round(apply_s, 2),
        "mean_execution_s": round(history.running_s / executions, 2),
        "machine_busy_pct": round(meter.machine_busy_pct(), 1),
        **{f"cpu_{role.replace('-', '_')}_pct": round(100 * seconds / measured_s, 1) for role, seconds in cpu.items()},
        "cpu_operator_main_thread_pct": round(100 * meter.main_thread_seconds() / measured_s, 1),
    }
    other = {key: count for key, count in writes.items() if key not in _KNOWN_WRITES}
    how = "with one kubectl apply" if create == "kubectl" else f"over {CREATE_CONCURRENCY} API connections at once"
    notes = (
        f"{executions} Executions x {steps} no-op steps created {how} on a local kube-apiserver"
        f" (etcd without fsync), {workers} worker processes; `cerebelum operator` with its default --status-interval"
        " and --api-qps on SQLite; steps/s from the engine's history (first ExecutionStarted to last"
        " ExecutionSucceeded), wall from the first create until the API shows every Execution Succeeded; API writes of"
        f" {OPERATOR_USER} in the namespace from the API server's audit log; cpu_*_pct is CPU time over the wall"
        f" interval (100 = one core of {os.cpu_count()})."
    )
    if operator_args:
        notes += f" The operator ran with {' '.join(operator_args)} (not its defaults)."
    if other:
        notes += f" Other writes: {dict(other)}."
    return {
        "system": "Cerebelum (Kubernetes operator)",
        "version": version,
        "store": "SQLite (file)",
        "scenario": "kubernetes",
        "figures": figures,
        "notes": notes,
        "unsupported": None,
    }


_KNOWN_WRITES = {"patch executions/status", "patch executions", "create events"}


# -- the command line --------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["kubernetes"], default="kubernetes")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="the README's quick size (20 x 3, 2 workers)")
    parser.add_argument("--executions", type=int)
    parser.add_argument("--steps", type=int, help="steps per execution (at most 200)")
    parser.add_argument("--workers", type=int)
    parser.add_argument(
        "--create",
        choices=["parallel", "kubectl"],
        default="parallel",
        help="create the Executions over 8 API connections at once (default), or with one `kubectl apply`",
    )
    parser.add_argument(
        "--operator-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass ARG on to `cerebelum operator` (repeat; for experiments, e.g. --operator-arg=--api-qps=1000)",
    )
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the operator over the run into DIR")
    parser.add_argument("--native", action="store_true", help="with --profile: native frames too (pauses it)")
    parser.add_argument("--store", choices=["sqlite"], default="sqlite", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    executions, steps, workers = QUICK if args.quick else FULL
    args.executions = args.executions or executions
    args.steps = args.steps or steps
    args.workers = args.workers or workers
    if not 1 <= args.steps <= 200:
        parser.error("--steps must be between 1 and 200 (noop_worker.py serves s1..s200)")
    if args.executions < 1 or args.workers < 1:
        parser.error("--executions and --workers must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)

    def _terminate(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # unwind, so every context manager stops its processes

    signal.signal(signal.SIGTERM, _terminate)
    try:
        result = run_kubernetes(
            args.executions,
            args.steps,
            args.workers,
            create=args.create,
            operator_args=args.operator_arg,
            profile_dir=args.profile,
            native=args.native,
        )
    except subprocess.CalledProcessError as error:  # a kubectl call in the set-up
        print(f"kubernetes runner: {' '.join(map(str, error.cmd))} failed:\n{error.stderr}", file=sys.stderr)
        return 1
    except RuntimeError as error:  # BenchError, ControlPlaneError, or helm that could not be built
        print(f"kubernetes runner: {error}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
