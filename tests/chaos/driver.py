"""Drive a chaos run: real engine, workers and database, killed at random while executions run.

Used by the pytest suite (CI-sized runs) and by ``long_run.py`` (thousands of executions). A run:

1. starts the engine (a ``Backend``: ``cerebelum dev`` here, the operator in operator_backend.py)
   and ``workers`` worker processes (tests/chaos/worker.py), which write a ledger of every attempt;
2. starts ``executions`` executions of the chaos workflow, spread over ``start_window_s``, each
   with an input that decides its fate (workload.py), retrying a start the engine did not answer
   with the same execution id (starts are idempotent by id);
3. meanwhile an approver thread grants, rejects or cancels the executions waiting at ``gate``,
   as their input says, and a chaos thread works through a schedule drawn from the seed: SIGKILL
   the engine and start it again, SIGKILL a worker and start another, restart the database
   server (PostgreSQL: an immediate stop, which is a crash, then a start on the same data);
4. waits until every execution is terminal (or ``finish_timeout_s`` passes), stops everything
   and checks the invariants (invariants.py) against the store and the ledger.

Everything random comes from ``seed``, printed first, so a failing schedule can be replayed
(the machine's timing differs between runs, so a replay is the same plan, not the same race).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cerebelum import (
    AbortedError,
    Client,
    DeadlineExceededError,
    FailedPreconditionError,
    ServerError,
    UnavailableError,
)
from cerebelum_operator.store import EventStore, open_store
from tests.support.postgres import PostgresServer
from tests.support.processes import EngineProcess, WorkerProcess

from .invariants import Event, Row, Verdict, percentiles, verify
from .workload import APPROVER, SPEC, TASK_QUEUE, WORKFLOW, approval_decision, make_inputs

__all__ = [
    "Backend",
    "ChaosPlan",
    "ChaosReport",
    "ChaosRun",
    "DevBackend",
    "TransientError",
    "seed_from_environment",
]

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled"})


class TransientError(RuntimeError):
    """A backend's own transient failure (kubectl could not reach the API server): try again."""


# Errors after which a client call is simply tried again: the engine or its database is down.
TRANSIENT = (UnavailableError, DeadlineExceededError, AbortedError, ServerError, TransientError)

Log = Callable[[str], None]


def seed_from_environment() -> int:
    """``$CHAOS_SEED`` when set (to replay a run), else a fresh one."""
    value = os.environ.get("CHAOS_SEED")
    return int(value) if value else random.SystemRandom().randrange(1, 2**31)


@dataclass(frozen=True, kw_only=True)
class ChaosPlan:
    seed: int
    executions: int = 200
    engine_kills: int = 10
    worker_kills: int = 6
    database_restarts: int = 0
    workers: int = 3
    start_window_s: float = 40.0
    chaos_tail_s: float = 6.0  # the chaos goes on this long after the last start
    finish_timeout_s: float = 240.0  # after the chaos, for every execution to finish

    def schedule(self, rng: random.Random) -> list[tuple[float, str]]:
        """(seconds after the first start, what): the kills and restarts, in time order.

        Drawn uniformly over the window in which executions are started and run, so kills land
        in every phase of the workload; none in the first second, so something is in flight. A
        quarter of the engine kills follow the one before by under a second: as the kill waits for
        the restart, they land just after the engine serves again, in the middle of its recovery.
        """
        horizon = self.start_window_s + self.chaos_tail_s
        plan: list[tuple[float, str]] = []
        for _ in range(self.engine_kills):
            if plan and rng.random() < 0.25:  # again right after the last restart, while it recovers
                plan.append((plan[-1][0] + rng.uniform(0.05, 1.0), "engine"))
            else:
                plan.append((rng.uniform(1.0, horizon), "engine"))
        plan += [(rng.uniform(1.0, horizon), "worker") for _ in range(self.worker_kills)]
        plan += [(rng.uniform(2.0, horizon), "database") for _ in range(self.database_restarts)]
        return sorted(plan)


class Backend(Protocol):
    """The engine under chaos and the client's way to it: `cerebelum dev`, or the operator."""

    @property
    def name(self) -> str:
        """What the summary calls this backend."""

    @property
    def approver(self) -> str:
        """Who the store records as having approved (the decisions' author)."""

    @property
    def address(self) -> str:
        """Where workers connect."""

    def launch(self) -> None:
        """Start the engine and create the chaos workflow."""

    def kill_engine(self, rng: random.Random) -> None:
        """SIGKILL the engine process and start it again; return once it serves."""

    def exit_status(self) -> int | None:
        """The engine's exit status if it exited on its own (None while it runs)."""

    def restart_engine(self) -> None:
        """Start the engine again after it exited; return once it serves."""

    @property
    def expected_exits(self) -> frozenset[int]:
        """Exit statuses that are the engine's design, not a bug (the operator: 75, a lost Lease)."""

    def start_execution(self, key: str, input: dict[str, Any]) -> None:
        """Start one execution (idempotent by ``key``); raise a TRANSIENT error to be retried."""

    def waiting_for_approval(self) -> list[str]:
        """Keys of executions waiting at ``gate``."""

    def decide(self, key: str, decision: str, input: dict[str, Any]) -> None:
        """Approve, reject or cancel; an already decided one is no error."""

    def execution_ids(self, keys: list[str]) -> dict[str, str]:
        """The store's execution id of each key."""

    def store_url(self) -> str: ...

    def shutdown(self) -> None: ...

    def final_checks(self, keys: dict[str, dict[str, Any]], rows: dict[str, Row | None]) -> list[str]:
        """Backend-specific violations (the operator: the Execution objects show the same phases).

        Called with the engine still running, after every execution finished.
        """


@dataclass
class DevBackend:
    """`cerebelum dev` on SQLite or PostgreSQL, driven through the SDK's Client."""

    database_url: str
    workdir: Path
    postgres: PostgresServer | None = None  # set to restart the database server too
    engine: EngineProcess | None = None
    _client: Client | None = None

    @property
    def name(self) -> str:
        return "dev/" + self.database_url.split(":", 1)[0].split("+", 1)[0]

    @property
    def approver(self) -> str:
        return APPROVER

    @property
    def address(self) -> str:
        assert self.engine is not None
        return self.engine.address

    @property
    def client(self) -> Client:
        assert self._client is not None
        return self._client

    def launch(self) -> None:
        self.engine = EngineProcess(database_url=self.database_url, log_path=self.workdir / "engine.log")
        self.engine.start()
        self._client = Client(address=self.engine.address, timeout=10)
        self.client.apply_workflow(WORKFLOW, SPEC)

    def kill_engine(self, rng: random.Random) -> None:
        assert self.engine is not None
        self.engine.kill()
        time.sleep(rng.uniform(0, 0.5))
        self.engine.launch()
        self.engine.wait_ready(timeout=60)

    def exit_status(self) -> int | None:
        assert self.engine is not None and self.engine.process is not None
        return self.engine.process.poll()

    def restart_engine(self) -> None:
        assert self.engine is not None
        self.engine.start()

    @property
    def expected_exits(self) -> frozenset[int]:
        return frozenset()

    def start_execution(self, key: str, input: dict[str, Any]) -> None:
        self.client.start(WORKFLOW, input, execution_id=key)

    def waiting_for_approval(self) -> list[str]:
        return [e.id for e in self.client.list(workflow=WORKFLOW, phase="WaitingForApproval", limit=1000)]

    def decide(self, key: str, decision: str, input: dict[str, Any]) -> None:
        try:
            if decision == "approve":
                self.client.approve(key, "gate", approver=APPROVER, payload={"ticket": f"T-{input['n']}"})
            elif decision == "reject":
                self.client.reject(key, "gate", approver=APPROVER, reason="the chaos suite says no")
            else:
                self.client.cancel(key, reason="the chaos suite cancels it")
        except FailedPreconditionError:
            pass  # decided before (its answer lost to a kill): the engine refuses the second time

    def execution_ids(self, keys: list[str]) -> dict[str, str]:
        return {key: key for key in keys}

    def store_url(self) -> str:
        return self.database_url

    def shutdown(self) -> None:
        if self._client is not None:
            self._client.close()
        if self.engine is not None:
            self.engine.stop()

    def final_checks(self, keys: dict[str, dict[str, Any]], rows: dict[str, Row | None]) -> list[str]:
        return []


@dataclass
class Incident:
    kind: str  # engine | worker | database, or exit (the engine exited on its own and was started again)
    at: float  # wall time the kill (or stop) was sent
    back_at: float  # wall time the process (or server) served again
    detail: str = ""


@dataclass
class ChaosReport:
    plan: ChaosPlan
    backend: str
    incidents: list[Incident]
    verdict: Verdict
    summary: dict[str, Any]
    thread_errors: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [*self.thread_errors, *(f"unfinished: {u}" for u in self.unfinished), *self.verdict.violations]

    def line(self) -> str:
        """The one-line summary CI prints: kill counts and size."""
        s = self.summary
        return (
            f"chaos[{self.backend}] seed={self.plan.seed} executions={s['executions']} "
            f"engine_kills={s['engine_kills']} worker_kills={s['worker_kills']} "
            f"database_restarts={s['database_restarts']} engine_exits={s['engine_exits']} steps_completed={s['steps_completed']} "
            f"attempts={s['attempts']} repeated_side_effects={s['repeated_side_effects']} "
            f"known_issues={s['known_issues']} "
            f"phases={s['phases']} duration_s={s['duration_s']} violations={len(self.problems)}"
        )


class ChaosRun:
    def __init__(self, plan: ChaosPlan, backend: Backend, workdir: Path, *, log: Log | None = None) -> None:
        self.plan = plan
        self.backend = backend
        self.workdir = workdir
        self.log = log or (lambda text: print(text, flush=True))
        self.ledger = workdir / "ledger.jsonl"
        self.rng = random.Random(plan.seed)
        self.inputs = {f"chaos-{plan.seed}-{i['n']:05d}": i for i in make_inputs(plan.executions, self.rng)}
        self.workers: list[WorkerProcess] = []
        self.incidents: list[Incident] = []
        self.errors: list[str] = []
        self.started: set[str] = set()
        self.decisions = 0
        self._stop = threading.Event()
        self._starts_done = threading.Event()
        self._chaos_done = threading.Event()
        self._engine_lock = threading.Lock()  # one of the chaos and the supervisor handles the engine at a time
        self._t0 = 0.0

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> ChaosReport:
        self.log(f"chaos seed {self.plan.seed} ({self.backend.name}): replay with CHAOS_SEED={self.plan.seed}")
        self.ledger.touch()
        began = time.monotonic()
        self.backend.launch()
        for _ in range(self.plan.workers):
            self._start_worker()
        self._t0 = time.monotonic()
        threads = [
            threading.Thread(target=self._guard(self._start_all), name="chaos-starter", daemon=True),
            threading.Thread(target=self._guard(self._approve_loop), name="chaos-approver", daemon=True),
            threading.Thread(target=self._guard(self._chaos_loop), name="chaos-killer", daemon=True),
            threading.Thread(target=self._guard(self._supervise), name="chaos-supervisor", daemon=True),
        ]
        for thread in threads:
            thread.start()
        unfinished = self._wait_for_the_end()
        self._stop.set()
        for thread in threads:
            thread.join(timeout=90)
        duration = time.monotonic() - began
        for worker in self.workers:
            worker.stop()
        try:
            return self._report(duration, unfinished)
        finally:
            self.backend.shutdown()

    def _guard(self, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except Exception:
                self.errors.append(f"{threading.current_thread().name}: {traceback.format_exc()}")
                self._stop.set()

        return run

    def _start_worker(self, address: str | None = None) -> WorkerProcess:
        """A worker of ``address``; by default the next of the backend's worker addresses in turn
        (several engines that split the shards each need workers of their own)."""
        addresses: list[str] = list(getattr(self.backend, "worker_addresses", None) or [self.backend.address])
        worker = WorkerProcess(
            script=WORKER_SCRIPT,
            address=address or addresses[len(self.workers) % len(addresses)],
            ledger=self.ledger,
            log_path=self.workdir / f"worker-{len(self.workers)}.log",
            task_queue=TASK_QUEUE,
        ).start()
        self.workers.append(worker)
        return worker

    def _live_workers(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.process is not None and w.process.poll() is None]

    # -- threads ----------------------------------------------------------------------------------
    def _start_all(self) -> None:
        spacing = self.plan.start_window_s / max(1, self.plan.executions)
        for index, (key, input) in enumerate(self.inputs.items()):
            due = self._t0 + index * spacing
            while not self._stop.is_set() and time.monotonic() < due:
                time.sleep(min(0.05, due - time.monotonic()))
            while not self._stop.is_set():
                try:
                    self.backend.start_execution(key, input)
                    break
                except TRANSIENT:
                    time.sleep(0.2)  # the engine is down or restarting: the same id again
            self.started.add(key)
        self._starts_done.set()

    def _approve_loop(self) -> None:
        while not self._stop.is_set():
            try:
                waiting = self.backend.waiting_for_approval()
            except TRANSIENT:
                waiting = []
            for key in waiting:
                input = self.inputs.get(key)
                if input is None or self._stop.is_set():
                    continue
                try:
                    self.backend.decide(key, approval_decision(input), input)
                    self.decisions += 1
                except TRANSIENT:
                    break  # down: look again in a moment
            self._stop.wait(0.3)

    def _chaos_loop(self) -> None:
        for offset, kind in self.plan.schedule(self.rng):
            while not self._stop.is_set() and time.monotonic() < self._t0 + offset:
                time.sleep(0.02)
            if self._stop.is_set():
                return
            at = time.time()
            if kind == "engine":
                with self._engine_lock:
                    self.backend.kill_engine(self.rng)
                self.incidents.append(Incident("engine", at, time.time()))
            elif kind == "worker":
                live = self._live_workers()
                victim = self.rng.choice(live)
                pid = victim.process.pid if victim.process is not None else 0
                victim.kill()
                if self.rng.random() < 0.3:
                    time.sleep(self.rng.uniform(0.5, 3.0))  # sometimes fewer workers for a while
                self._start_worker(victim.address)
                self.incidents.append(Incident("worker", at, time.time(), detail=str(pid)))
            else:
                server = getattr(self.backend, "postgres", None)
                assert isinstance(server, PostgresServer), "database restarts need a PostgreSQL server we started"
                server.restart(mode="immediate", down_s=self.rng.uniform(0.2, 2.0))
                self.incidents.append(Incident("database", at, time.time()))
            counts = {k: sum(1 for i in self.incidents if i.kind == k) for k in ("engine", "worker", "database")}
            victim_pid = f" (pid {self.incidents[-1].detail})" if kind == "worker" else ""
            self.log(f"  t={time.monotonic() - self._t0:5.1f}s {kind} killed{victim_pid}; so far {counts}")
        self._chaos_done.set()

    def _supervise(self) -> None:
        """What a kubelet does for the operator's pod: start the engine again when it exits on its own.

        An exit the backend does not expect (any in dev mode) is a failure of the run.
        """
        while not self._stop.wait(0.5):
            with self._engine_lock:
                status = self.backend.exit_status()
                if status is None:
                    continue
                at = time.time()
                self.log(f"  t={time.monotonic() - self._t0:5.1f}s the engine exited on its own, status {status}")
                if status not in self.backend.expected_exits:
                    self.errors.append(f"the engine exited on its own with status {status} at {at:.3f}")
                self.backend.restart_engine()
                self.incidents.append(Incident("exit", at, time.time(), detail=str(status)))

    def _wait_for_the_end(self) -> list[str]:
        """Block until all started executions are terminal and the chaos is over; the unfinished otherwise."""
        store = open_store(self.backend.store_url())
        try:
            deadline: float | None = None
            last_note = 0.0
            pending: list[str] = list(self.inputs)
            while True:
                if self._stop.is_set() and self.errors:
                    return pending
                if self._starts_done.is_set() and self._chaos_done.is_set() and deadline is None:
                    deadline = time.monotonic() + self.plan.finish_timeout_s
                try:
                    phases = self._phases(store)
                except Exception as error:  # the database is restarting
                    phases = None
                    self.log(f"  (cannot read the store: {type(error).__name__})")
                if phases is not None:
                    pending = [k for k in self.inputs if phases.get(k) not in TERMINAL]
                    if deadline is not None and not pending:
                        return []
                    if time.monotonic() - last_note > 5:
                        last_note = time.monotonic()
                        self.log(
                            f"  t={time.monotonic() - self._t0:5.1f}s started {len(self.started)}, "
                            f"finished {len(self.inputs) - len(pending)}/{len(self.inputs)}, "
                            f"decisions {self.decisions}"
                        )
                if deadline is not None and time.monotonic() > deadline:
                    return pending
                time.sleep(0.5)
        finally:
            store.close()

    def _phases(self, store: EventStore) -> dict[str, str]:
        ids = self.backend.execution_ids(list(self.started))
        by_id = {row.execution_id: row.phase for row in store.list_executions(limit=10 * len(self.inputs) + 100)}
        return {key: by_id[ids[key]] for key in ids if ids[key] in by_id}

    # -- the verdict ------------------------------------------------------------------------------
    def _report(self, duration: float, unfinished: list[str]) -> ChaosReport:
        ids = self.backend.execution_ids(list(self.inputs))
        store = open_store(self.backend.store_url())
        try:
            rows: dict[str, Row | None] = {}
            histories: dict[str, list[Event]] = {}
            for execution_id in ids.values():
                row = store.get_execution(execution_id)
                rows[execution_id] = None if row is None else Row(row.phase, row.output, row.error)
                histories[execution_id] = [
                    Event(e.seq, e.at_ms, e.event.kind, e.event.to_data()) for e in store.load_history(execution_id)
                ]
        finally:
            store.close()
        ledger = [json.loads(line) for line in self.ledger.read_text().splitlines() if line.strip()]
        inputs_by_id = {ids[key]: input for key, input in self.inputs.items() if key in ids}
        missing_ids = [key for key in self.inputs if key not in ids]
        verdict = verify(inputs_by_id, rows, histories, ledger, approver=self.backend.approver)
        for key in missing_ids:
            verdict.violations.append(f"{key}: lost (no execution id for it)")
        verdict.violations.extend(self.backend.final_checks(self.inputs, {k: rows.get(ids.get(k, "")) for k in ids}))
        summary = self._summary(duration, verdict, histories, ledger)
        incidents = [{"kind": i.kind, "at": i.at, "back_at": i.back_at, "detail": i.detail} for i in self.incidents]
        (self.workdir / "incidents.json").write_text(json.dumps(incidents, indent=1))
        report = ChaosReport(
            plan=self.plan,
            backend=self.backend.name,
            incidents=list(self.incidents),
            verdict=verdict,
            summary=summary,
            thread_errors=list(self.errors),
            unfinished=[self._describe_unfinished(ids.get(k, k), rows, histories) for k in unfinished],
        )
        self.log(report.line())
        return report

    @staticmethod
    def _describe_unfinished(execution_id: str, rows: dict[str, Row | None], histories: dict[str, list[Event]]) -> str:
        row = rows.get(execution_id)
        tail = [f"{e.seq}:{e.kind}:{dict(e.data).get('step', '')}" for e in histories.get(execution_id, [])[-6:]]
        return f"{execution_id} {row.phase if row else 'missing'} last events {tail}"

    def _summary(
        self, duration: float, verdict: Verdict, histories: dict[str, list[Event]], ledger: list[dict[str, Any]]
    ) -> dict[str, Any]:
        figures = verdict.figures
        kills = [i for i in self.incidents if i.kind == "engine"]
        all_events = sorted(e.at_ms for history in histories.values() for e in history)
        progress_after = []  # kill -> the first event a restarted engine committed
        in_flight = []  # executions that had started and not finished at each kill
        finish_after: list[float] = []  # kill -> the end of each execution that was in flight at it
        spans = [
            (history[0].at_ms / 1000, history[-1].at_ms / 1000)
            for history in histories.values()
            if history and history[-1].kind in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionCancelled")
        ]
        for kill in kills:
            later = next((at for at in all_events if at / 1000 > kill.back_at), None)
            if later is not None:
                progress_after.append(later / 1000 - kill.at)
            caught = [end for start, end in spans if start < kill.at < end]
            in_flight.append(len(caught))
            finish_after.extend(end - kill.at for end in caught)
        killed_pids = {int(i.detail) for i in self.incidents if i.kind == "worker"}
        open_runs: dict[tuple[str, str, int], int] = {}
        for line in ledger:
            key = (line["execution"], line["step"], line["attempt"])
            if line["pid"] in killed_pids:
                open_runs[key] = open_runs.get(key, 0) + (1 if line["event"] == "start" else -1)
        phases = {k.removeprefix("phase_"): v for k, v in figures.items() if k.startswith("phase_")}
        return {
            "seed": self.plan.seed,
            "backend": self.backend.name,
            "executions": len(self.inputs),
            "phases": phases,
            "engine_kills": len(kills),
            "worker_kills": sum(1 for i in self.incidents if i.kind == "worker"),
            "database_restarts": sum(1 for i in self.incidents if i.kind == "database"),
            "engine_exits": [i.detail for i in self.incidents if i.kind == "exit"],
            "known_issues": dict(getattr(self.backend, "known_issues", {})),
            "steps_cut_by_worker_kills": sum(1 for n in open_runs.values() if n > 0),
            "approver_decisions": self.decisions,
            "events": figures.get("events", 0),
            "steps_completed": figures.get("steps_completed", 0),
            "attempts": figures.get("attempts", 0),
            "ledger_runs": figures.get("ledger_runs", 0),
            "repeated_side_effects": figures.get("repeated_side_effects", 0),
            "steps_with_repeated_side_effects": figures.get("steps_with_repeated_side_effects", 0),
            "runs_after_their_attempt_closed": figures.get("runs_after_their_attempt_closed", 0),
            "failed_attempts_by_error": figures.get("failed_attempts_by_error", {}),
            "engine_restart_s": percentiles([k.back_at - k.at for k in kills]),
            "first_progress_after_kill_s": percentiles(progress_after),
            "executions_in_flight_at_kill": percentiles([float(n) for n in in_flight]),
            "in_flight_execution_finished_after_kill_s": percentiles(finish_after),
            "database_down_s": percentiles([i.back_at - i.at for i in self.incidents if i.kind == "database"]),
            "duration_s": round(duration, 1),
        }
