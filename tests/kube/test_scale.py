"""500 Executions through the operator: all finish, and API writes stay bounded per execution.

Writes are counted from the API server's audit log (every write the operator's ServiceAccount
made in the test namespace), so the figure is the server's, not the operator's own claim.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
import yaml

from tests.support.control_plane import ControlPlane
from tests.support.kube import OPERATOR_USER, apply_yaml, audited_writes, audited_writes_per_object
from tests.support.processes import OperatorProcess

from .operator_fixtures import StartWorker
from .test_operator import execution, workflow

pytestmark = [pytest.mark.kube, pytest.mark.timeout(600)]

EXECUTIONS = 500
STEPS = 8
STATUS_INTERVAL_S = 0.5  # the operator fixture's --status-interval
PROGRESS_WRITES_PER_S = 100 / 4  # a quarter of the default --api-qps (StatusWriter)


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
                },
                indent=2,
            )
        )
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
