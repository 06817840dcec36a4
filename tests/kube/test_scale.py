"""500 Executions through the operator: all finish, and API writes stay bounded per execution.

Writes are counted from the API server's audit log (every write the operator's ServiceAccount
made in the test namespace), so the figure is the server's, not the operator's own claim.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.control_plane import ControlPlane
from tests.support.kube import (
    OPERATOR_USER,
    apply_yaml,
    audited_writes,
    audited_writes_per_object,
    service_account_kubeconfig,
)
from tests.support.processes import OperatorProcess, free_port

from .operator_fixtures import StartWorker
from .test_operator import execution, workflow

pytestmark = [pytest.mark.kube, pytest.mark.timeout(600)]

EXECUTIONS = 500
STEPS = 8
STATUS_INTERVAL_S = 0.5  # the operator fixture's --status-interval
PROGRESS_WRITES_PER_S = 100 / 4  # a quarter of the default --api-qps (StatusWriter)


@pytest.fixture
def operator(
    control_plane: ControlPlane,
    crds: list[str],
    operator_rbac: None,
    namespace: str,
    operator_database_url: str,
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    """The tests' operator (operator_fixtures.operator), serving /metrics on `health_port` too."""
    health_port = free_port()
    process = OperatorProcess(
        database_url=operator_database_url,
        log_path=tmp_path / "operator.log",
        kubeconfig=service_account_kubeconfig(control_plane, tmp_path / "operator.kubeconfig"),
        extra_args=(
            *("--namespace", namespace, "--lease-name", f"operator-{namespace}", "--status-interval", "0.5"),
            *("--auth", "none", "--health-address", f"127.0.0.1:{health_port}"),
        ),
    )
    process.health_port = health_port  # type: ignore[attr-defined]
    process.start()
    yield process
    process.stop()
    print(f"--- operator log ---\n{process.log_path.read_text()[-6000:]}")


def metric(operator: OperatorProcess, family: str, sample: str | None = None) -> float:
    """A sample (`family` itself unless named) the operator serves on /metrics; 0 when the family is
    there without it (a labelled counter never incremented)."""
    port = operator.health_port  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert re.search(rf"^# TYPE {re.escape(family)} ", text, re.MULTILINE), f"the operator serves no {family}"
    found = re.search(rf"^{re.escape(sample or family)} ([0-9.e+]+)$", text, re.MULTILINE)
    return 0.0 if found is None else float(found.group(1))


def test_five_hundred_executions_finish_with_api_writes_bounded_independently_of_their_steps(
    control_plane: ControlPlane,
    audit_log: Path,
    namespace: str,
    operator: OperatorProcess,
    start_worker: StartWorker,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    start_worker()
    start_worker()
    steps = [f"s{i}" for i in range(1, STEPS + 1)]
    documents = [workflow("batch", steps)] + [execution(f"run-{i:03d}", "batch") for i in range(EXECUTIONS)]
    started = time.monotonic()
    result = apply_yaml(control_plane, yaml.safe_dump_all(documents), namespace=namespace)
    assert result.returncode == 0, result.stderr
    applied = time.monotonic() - started

    def phases() -> list[str]:
        listed = control_plane.kubectl(
            "get", "executions", "-n", namespace, "-o", "jsonpath={.items[*].status.phase}"
        ).stdout
        return listed.split()

    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        shown = phases()
        if len(shown) == EXECUTIONS and set(shown) == {"Succeeded"}:
            break
        time.sleep(1)
    else:
        pytest.fail(f"not all executions succeeded: {sorted(set(phases()))} of {len(phases())}")
    wall = time.monotonic() - started

    with sqlite3.connect(str(tmp_path / "operator.db")) as db:
        first_start, last_end = db.execute(
            "SELECT (SELECT MIN(at_ms) FROM events WHERE kind = 'ExecutionStarted'),"
            " (SELECT MAX(at_ms) FROM events WHERE kind = 'ExecutionSucceeded')"
        ).fetchone()
        (completed,) = db.execute("SELECT COUNT(*) FROM events WHERE kind = 'StepCompleted'").fetchone()
        (events,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
        (running_seconds,) = db.execute(
            "SELECT SUM(e.at_ms - s.at_ms) / 1000.0 FROM events s JOIN events e USING (execution_id)"
            " WHERE s.kind = 'ExecutionStarted' AND e.kind = 'ExecutionSucceeded'"
        ).fetchone()
    assert completed == EXECUTIONS * STEPS
    engine_seconds = (last_end - first_start) / 1000

    time.sleep(1)  # let the last audit lines land
    writes = audited_writes(audit_log, namespace=namespace)
    workflow_reads = metric(
        operator, "cerebelum_kube_api_reads_total", 'cerebelum_kube_api_reads_total{kind="Workflow"}'
    )
    history_reads = metric(operator, "cerebelum_kube_status_history_reads")
    from_memory = metric(operator, "cerebelum_kube_status_history_from_memory")
    echoes_dropped = metric(operator, "cerebelum_kube_status_echoes_dropped")
    watch_events = metric(operator, "cerebelum_kube_execution_watch_events")
    total = sum(writes.values())
    per_execution = total / EXECUTIONS
    status_writes = writes["patch executions/status"] / EXECUTIONS
    with capsys.disabled():
        print(
            "\n"
            + json.dumps(
                {
                    "executions": EXECUTIONS,
                    "steps_per_execution": STEPS,
                    "history_events_per_execution": events / EXECUTIONS,
                    "api_writes_total": total,
                    "api_writes_per_execution": round(per_execution, 2),
                    "status_writes_per_execution": round(status_writes, 2),
                    "writes_by_kind": dict(writes),
                    "kubectl_apply_seconds": round(applied, 1),
                    "engine_steps_per_second": round(completed / engine_seconds, 1),
                    "end_to_end_seconds": round(wall, 1),
                    "end_to_end_steps_per_second": round(completed / wall, 1),
                    "operator_user": OPERATOR_USER,
                    "workflow_reads": workflow_reads,
                    "status_writes_reading_history": history_reads,
                    "status_writes_history_from_memory": from_memory,
                    "status_echoes_dropped_per_execution": round(echoes_dropped / EXECUTIONS, 2),
                    "execution_watch_events_per_execution": round(watch_events / EXECUTIONS, 2),
                },
                indent=2,
            )
        )
    # The Workflow's spec comes from the watch: read from the API server only by the Executions
    # handled before the watch delivered it (none, or a few), never once per Execution.
    assert workflow_reads < EXECUTIONS / 10, workflow_reads
    # Each Execution is expected before its start, so every status write had its events in memory.
    assert history_reads == 0 and from_memory >= EXECUTIONS, (history_reads, from_memory)
    # Echoes of the status writes that do not end an Execution never reach kopf: what it processes
    # per Execution is its creation, kopf's finalizer patch, the end written and the finished label
    # (it then leaves the watch), plus an echo that came back before our write's response did.
    status_total = writes["patch executions/status"]
    assert echoes_dropped > 0 and watch_events + echoes_dropped >= 4 * EXECUTIONS, (watch_events, echoes_dropped)
    assert watch_events <= 4 * EXECUTIONS + (status_total - EXECUTIONS - echoes_dropped), (watch_events, writes)
    # A restart re-lists and resumes every Execution; finished ones must cost no writes at all.
    operator.kill()
    operator.start()
    time.sleep(8)  # kopf lists all 500 and calls the resume handlers within a few seconds
    after_restart = audited_writes(audit_log, namespace=namespace) - writes
    with capsys.disabled():
        print(f"writes after a restart over {EXECUTIONS} finished executions: {dict(after_restart)}")
    assert sum(after_restart.values()) == 0, dict(after_restart)
    # Writes do not follow the events. Two object patches per Execution: the finalizer on, and the
    # finalizer off with the finished label. kopf's record of what it handled stays in the
    # operator's memory (bookkeeping.ExecutionsInMemory), and a success posts no Event.
    object_patches = audited_writes_per_object(audit_log, "patch executions", namespace=namespace)
    assert len(object_patches) == EXECUTIONS and max(object_patches.values()) <= 2, object_patches.most_common(3)
    assert writes["patch executions"] == 2 * EXECUTIONS, dict(writes)
    assert writes["create events"] == 0, dict(writes)
    # ...and status writes bounded by time, not by events: at most one per --status-interval of
    # each Execution's life, plus its first and its last (whatever the machine's speed).
    assert writes["patch executions/status"] <= 2 * EXECUTIONS + running_seconds / STATUS_INTERVAL_S, dict(writes)
    # With hundreds running, progress alone (same phase) gets a quarter of the --api-qps budget
    # (100/s) between all of them: each Execution's first write and its end, plus at most that.
    assert writes["patch executions/status"] <= 2 * EXECUTIONS + PROGRESS_WRITES_PER_S * (engine_seconds + 1), dict(
        writes
    )
    # Never one per event. (Not a fixed ratio: on a machine kept busy each Execution lives longer,
    # so the time bound above allows more writes per event; 0.29 was seen under a CPU burner.)
    assert writes["patch executions/status"] < events, "never one status write per event"
