"""The execution listing's figures: the first page and the counts of a store of many executions.

    python bench/listing.py [--executions 100000] [--db sqlite|postgresql|both] [--repeat 5]

What the web UI's executions list and `cerebelum list` ask the store (`list_executions_page`,
`count_executions_by_phase`), timed on a store filled through the store's own write path
(`append_batch`: the execution row, its first event and its labels, 500 per transaction). The
executions: ids ``order-NNNNNN``; two started in each millisecond (so pages cut through ties);
phases 60 % Succeeded, 20 % Failed, 15 % Running, 5 % WaitingForApproval; labels ``team`` (one
of 10), ``env`` (one of 3) and, on one in 1,000, ``canary=true``. PostgreSQL is the tests'
throwaway server (tests/support/postgres.py, fsync off), ANALYZEd after the load.

Each query runs ``--repeat`` times on a warm store; the median and the slowest are printed, in
milliseconds, as one JSON object on stdout. A measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, ROOT / "operator"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from cerebelum_operator.engine import events as ev  # noqa: E402
from cerebelum_operator.store import (  # noqa: E402
    AppendRequest,
    EventStore,
    ExecutionQuery,
    ExecutionSummary,
    NewExecution,
    PageCursor,
    open_store,
)

PAGE = 50
_PHASES = ["Succeeded"] * 12 + ["Failed"] * 4 + ["Running"] * 3 + ["WaitingForApproval"]
_SPEC = {"timeline": ["a"], "steps": {"a": {"approval": {}}}}


def fill(store: EventStore, executions: int, *, batch: int = 500) -> float:
    """Write the executions; the seconds it took."""
    began = time.perf_counter()
    for first in range(0, executions, batch):
        requests = []
        for n in range(first, min(first + batch, executions)):
            at_ms = 1_700_000_000_000 + n // 2
            labels = {"team": f"team-{n % 10}", "env": ("prod", "staging", "dev")[n % 3]}
            if n % 1000 == 7:
                labels["canary"] = "true"
            started = ev.ExecutionStarted(workflow="orders", input={"n": n}, spec_hash="h")
            phase = _PHASES[(n * 7) % len(_PHASES)]
            requests.append(
                AppendRequest(
                    f"order-{n:06d}",
                    0,
                    [ev.RecordedEvent(1, at_ms, started)],
                    [],
                    ExecutionSummary(phase, [], None, None, None, at_ms),
                    NewExecution(workflow="orders", spec=_SPEC, spec_hash="h", input={"n": n}, labels=labels),
                )
            )
        failures = [outcome for outcome in store.append_batch(requests) if outcome is not None]
        if failures:
            raise failures[0]
    return time.perf_counter() - began


def _timed(action: Callable[[], Any], repeat: int) -> dict[str, float]:
    action()  # warm: statement caches, pages
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    return {"median_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2)}


def measure(store: EventStore, executions: int, repeat: int) -> dict[str, Any]:
    middle = PageCursor(1_700_000_000_000 + executions // 4, f"order-{executions // 2:06d}")
    pages: dict[str, tuple[ExecutionQuery, PageCursor | None]] = {
        "first page, unfiltered": (ExecutionQuery(), None),
        "a page in the middle, unfiltered": (ExecutionQuery(), middle),
        "first page, phase Failed": (ExecutionQuery(phases=("Failed",)), None),
        "first page, phases Running or WaitingForApproval": (
            ExecutionQuery(phases=("Running", "WaitingForApproval")),
            None,
        ),
        "first page, label team=team-3 (10 %)": (ExecutionQuery(labels=(("team", "team-3"),)), None),
        "first page, label canary=true (0.1 %)": (ExecutionQuery(labels=(("canary", "true"),)), None),
        "first page, labels team=team-3 and env=prod": (
            ExecutionQuery(labels=(("team", "team-3"), ("env", "prod"))),
            None,
        ),
        "first page, id contains '0042' (0.1 %)": (ExecutionQuery(id_contains="0042"), None),
        "first page, id contains 'order-' (all)": (ExecutionQuery(id_contains="order-"), None),
        "first page, id contains 'nothing' (none: a full scan)": (ExecutionQuery(id_contains="nothing"), None),
        "first page, phase Failed and label canary=true": (
            ExecutionQuery(phases=("Failed",), labels=(("canary", "true"),)),
            None,
        ),
        "first page, a created range (last 10 %)": (
            ExecutionQuery(created_from_ms=1_700_000_000_000 + executions * 9 // 20),
            None,
        ),
    }
    figures: dict[str, Any] = {}
    for name, (query, after) in pages.items():
        figures[name] = _timed(functools.partial(store.list_executions_page, query, after=after, limit=PAGE), repeat)
    counts = {
        "counts by phase, unfiltered": ExecutionQuery(),
        "counts by phase, label team=team-3": ExecutionQuery(labels=(("team", "team-3"),)),
        "counts by phase, id contains '0042'": ExecutionQuery(id_contains="0042"),
    }
    for name, query in counts.items():
        figures[name] = _timed(functools.partial(store.count_executions_by_phase, query), repeat)
    return figures


def run(url: str, executions: int, repeat: int) -> dict[str, Any]:
    store = open_store(url)
    try:
        store.migrate()
        seconds = fill(store, executions)
        if url.startswith("postgresql"):
            from sqlalchemy import text

            with store._write() as conn:  # type: ignore[attr-defined]
                conn.execute(text("ANALYZE"))
        return {"executions": executions, "fill_s": round(seconds, 1), **measure(store, executions, repeat)}
    finally:
        store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cerebelum-listing-") as directory:
        if args.db in ("sqlite", "both"):
            results["sqlite"] = run(f"sqlite:///{Path(directory) / 'store.db'}", args.executions, args.repeat)
        if args.db in ("postgresql", "both"):
            from tests.support.postgres import start_postgres

            server = start_postgres()
            try:
                results["postgresql"] = run(server.create_database(), args.executions, args.repeat)
            finally:
                server.stop()
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
