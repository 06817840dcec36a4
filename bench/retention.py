"""Retention figures (issue 19): what the store and the API server hold after many finished executions.

    python bench/retention.py store [--executions 100000 --per-day 10000 --retention-days 1]
    python bench/retention.py kubernetes [--executions 2000 --ttl 1s --retention 5s]

`store`: the engine in-process on a SQLite file and a fake clock, no Kubernetes. Executions of a
one-approval workflow (started, then approved: 4 events each, a 200-byte input) are run through
`EngineService`, `--per-day` of them per simulated day, while the `RetentionService` of
`cerebelum dev --retention` / `cerebelum operator --retention` sweeps with an export directory;
then the same number without retention, for comparison. It prints the store's rows and file size.

`kubernetes`: what tests/kube starts (etcd + kube-apiserver, the CRDs, the chart's RBAC), then
`cerebelum operator` with `--retention` and `--retention-export`; E Executions of a Workflow with
`ttlAfterFinished` are created over 8 connections (the workflow is one 1 ms timer step, so no
worker is needed); it samples the Execution objects' count until none is left and every history
was exported, then times `kubectl get executions` with none left, and, with `--keep`, again after
the same number of Executions kept for ever (an operator restarted without `--retention`).

Everything is printed as one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DAY_MS = 86_400_000
APPROVAL_SPEC = {"taskQueue": "q", "timeline": ["ok"], "steps": {"ok": {"approval": {}}}}
INPUT = {"order": "x" * 180}  # some 200 bytes of JSON


def _bytes_on_disk(db_path: Path) -> int:
    return sum(path.stat().st_size for path in db_path.parent.glob(db_path.name + "*"))


def _rows(db_path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        return {
            table: int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in ("executions", "events", "retired_executions")
        }


async def _store_run(
    db_path: Path, *, executions: int, per_day: int, retention_ms: int | None, export_dir: Path | None
) -> dict[str, Any]:
    from cerebelum_operator.engine import commands as cmd
    from cerebelum_operator.runtime import Database, EngineService, FakeClock, RetentionService
    from cerebelum_operator.store import open_store

    store = open_store(f"sqlite:///{db_path}")
    store.migrate()
    store.put_workflow("w", APPROVAL_SPEC, now_ms=0)
    db = Database(store)
    clock = FakeClock()
    engine = EngineService(db, clock=clock)
    retention = (
        None
        if retention_ms is None
        else RetentionService(db, engine, clock=clock, period_ms=retention_ms, export_dir=export_dir)
    )
    step_ms = DAY_MS // per_day
    batch = 200
    started = time.monotonic()
    removed = 0

    async def one(index: int) -> None:
        execution_id = f"order-{index:06d}"
        await engine.start("w", INPUT, execution_id=execution_id)
        await engine.handle(execution_id, cmd.Approve(step="ok", approver="bench"))

    try:
        for first in range(0, executions, batch):
            await asyncio.gather(*(one(index) for index in range(first, min(first + batch, executions))))
            for index in range(first, min(first + batch, executions)):
                engine.forget(f"order-{index:06d}")  # as a long-running engine's cache would have
            await clock.advance(step_ms * batch / 1000)
            if retention is not None:
                while (swept := await retention.sweep()) >= retention.batch:
                    removed += swept
                removed += swept
    finally:
        db.close()
    return {
        "executions": executions,
        "simulated_days": round(executions / per_day, 2),
        "retention_days": None if retention_ms is None else retention_ms / DAY_MS,
        "removed_by_retention": removed,
        "rows": _rows(db_path),
        "store_bytes": _bytes_on_disk(db_path),
        "seconds": round(time.monotonic() - started, 1),
    }


def _exports(directory: Path) -> dict[str, int]:
    files = list(directory.glob("*.jsonl")) if directory.exists() else []
    return {"exported_files": len(files), "exported_bytes": sum(path.stat().st_size for path in files)}


def store_figures(*, executions: int, per_day: int, retention_days: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="cerebelum-bench-retention-"))
    try:
        with_retention = asyncio.run(
            _store_run(
                work / "with.db",
                executions=executions,
                per_day=per_day,
                retention_ms=round(retention_days * DAY_MS),
                export_dir=work / "exports",
            )
        )
        with_retention.update(_exports(work / "exports"))
        without = asyncio.run(
            _store_run(work / "without.db", executions=executions, per_day=per_day, retention_ms=None, export_dir=None)
        )
        return {"with_retention": with_retention, "without_retention": without}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- through the operator ------------------------------------------------------------------------


def _timer_workflow(name: str, ttl: str) -> dict[str, Any]:
    return {
        "apiVersion": "cerebelum.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "taskQueue": "none",
            "timeline": ["tick"],
            "steps": {"tick": {"timer": {"duration": "1ms"}}},
            "ttlAfterFinished": ttl,
        },
    }


def _executions(workflow: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "cerebelum.io/v1alpha1",
            "kind": "Execution",
            "metadata": {"name": f"{workflow}-{index:06d}"},
            "spec": {"workflow": workflow, "input": INPUT},
        }
        for index in range(count)
    ]


def _kubectl_get_seconds(cp: Any, namespace: str, *, times: int = 3) -> float:
    """The best of `times` runs of `kubectl get executions` (the table users see)."""
    best = float("inf")
    for _ in range(times):
        began = time.monotonic()
        cp.kubectl("get", "executions", "-n", namespace)
        best = min(best, time.monotonic() - began)
    return round(best, 3)


def _count(cp: Any, namespace: str, kind: str = "executions") -> int:
    listed = json.loads(cp.kubectl("get", kind, "-n", namespace, "-o", "json").stdout)
    return len(listed["items"])


def kubernetes_figures(*, executions: int, ttl: str, retention: str, keep: bool) -> dict[str, Any]:
    from bench.kubernetes_runner import control_plane, create_in_parallel, prepare_cluster, running_operator

    work = Path(tempfile.mkdtemp(prefix="cerebelum-bench-retention-kube-"))
    exports = work / "exports"
    result: dict[str, Any] = {"executions": executions, "ttl": ttl, "retention": retention}
    try:
        with control_plane(work / "audit", work) as cp:
            namespace = prepare_cluster(cp)
            args = (
                *("--retention", retention, "--retention-export", str(exports), "--execution-ttl", ttl),
                *("--lease-duration", "15"),  # the chart's: the tests' 6 s is short for a loaded 2-core machine
            )
            with running_operator(cp, namespace, work, args) as operator:
                began = time.monotonic()
                create_in_parallel(cp, namespace, [_timer_workflow("brief", ttl), *_executions("brief", executions)])
                created_s = time.monotonic() - began
                peak = restarts = 0
                deadline = time.monotonic() + 3600
                while time.monotonic() < deadline:
                    assert operator.process is not None
                    if operator.process.poll() is not None:  # lost its Lease: a Deployment restarts it
                        restarts += 1
                        operator.start()
                    objects = _count(cp, namespace)
                    peak = max(peak, objects)
                    exported = len(list(exports.glob("*.jsonl"))) if exports.exists() else 0
                    if objects == 0 and exported >= executions:
                        break
                    time.sleep(1)
                else:
                    raise RuntimeError(f"{objects} objects left and {exported} histories exported after an hour")
                result.update(
                    created_seconds=round(created_s, 1),
                    drained_seconds=round(time.monotonic() - began, 1),
                    peak_objects=peak,
                    operator_restarts=restarts,
                    objects_left=_count(cp, namespace),
                    approvals_and_signals_left=_count(cp, namespace, "approvals") + _count(cp, namespace, "signals"),
                    store_rows=_rows(work / "operator.db"),
                    store_bytes=_bytes_on_disk(work / "operator.db"),
                    exported_files=len(list(exports.glob("*.jsonl"))),
                )
                result["kubectl_get_s"] = _kubectl_get_seconds(cp, namespace)
            if keep:
                # The same number kept for ever, to time kubectl against: an operator without
                # --retention (which caps every time-to-live) and with the default `never`.
                with running_operator(cp, namespace, work, ("--execution-ttl", "never", "--lease-duration", "15")):
                    create_in_parallel(
                        cp, namespace, [_timer_workflow("kept", "never"), *_executions("kept", executions)]
                    )
                    deadline = time.monotonic() + 3600
                    while time.monotonic() < deadline:
                        phases = cp.kubectl(
                            "get", "executions", "-n", namespace, "-o", "jsonpath={.items[*].status.phase}"
                        ).stdout.split()
                        if phases.count("Succeeded") >= executions:
                            break
                        time.sleep(2)
                    seconds = _kubectl_get_seconds(cp, namespace)
                    listed = cp.kubectl("get", "executions", "-n", namespace, "-o", "json").stdout
                    result["kept"] = {
                        "objects": _count(cp, namespace),
                        "kubectl_get_s": seconds,
                        "list_json_bytes": len(listed),
                    }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: stop the operator and the control plane


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    store = sub.add_parser("store")
    store.add_argument("--executions", type=int, default=100_000)
    store.add_argument("--per-day", type=int, default=10_000)
    store.add_argument("--retention-days", type=float, default=1.0)
    kube = sub.add_parser("kubernetes")
    kube.add_argument("--executions", type=int, default=2_000)
    kube.add_argument("--ttl", default="1s")
    kube.add_argument("--retention", default="5s")
    kube.add_argument("--keep", action="store_true", help="then as many kept for ever, to time kubectl against")
    args = parser.parse_args(argv)
    if args.part == "store":
        figures = store_figures(executions=args.executions, per_day=args.per_day, retention_days=args.retention_days)
    else:
        figures = kubernetes_figures(executions=args.executions, ttl=args.ttl, retention=args.retention, keep=args.keep)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
