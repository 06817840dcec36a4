"""What every benchmark runner shares: the result contract, percentiles, memory and size probes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:  # the peers' runners import this module too; only the type is needed
    from cerebelum import HistoryEvent

__all__ = [
    "Result",
    "database_size_mb",
    "percentile",
    "process_tree_cpu_s",
    "process_tree_rss_mb",
    "recorded_at",
    "sqlite_files_mb",
    "wait_until",
]


def recorded_at(event: HistoryEvent) -> datetime:
    """When the engine recorded `event`; every recorded event has a time, and a figure needs it."""
    if event.at is None:
        raise RuntimeError(f"history event {event.seq} ({event.type}) has no time")
    return event.at


@dataclass(frozen=True)
class Result:
    """One scenario on one system: the JSON object of bench/README.md's contract."""

    system: str
    version: str
    store: str
    scenario: str
    figures: dict[str, Any]
    notes: str
    unsupported: str | None = None
    failed: str | None = None  # set by bench/run.py when the runner itself failed

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> Result:
        data = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: a value that was measured, not an interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _children(pid: int) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []
    found: list[int] = []
    for task in tasks:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def process_tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (from /proc)."""
    total_kb, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except FileNotFoundError:
            continue
        pending += _children(current)
    return total_kb / 1024


_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process and all its descendants used so far, from /proc.

    Each process counts its own time plus that of its children that exited and were reaped
    (cutime, cstime), so a PostgreSQL backend that came and went between two readings is still in
    the difference, in its postmaster's figures. A process that is gone counts 0.
    """
    ticks, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        pending += _children(current)
    return ticks / _TICKS_PER_S


def sqlite_files_mb(url: str) -> float:
    """The database file plus its -wal and -shm, in MB."""
    database = Path(make_url(url).database or "")
    paths = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    return sum(p.stat().st_size for p in paths if p.exists()) / 1e6


def database_size_mb(url: str) -> float:
    """pg_database_size of the URL's database, in MB."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return float(conn.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0) / 1e6
    finally:
        engine.dispose()


def wait_until(condition: Callable[[], bool], timeout: float, *, every: float = 0.05) -> None:
    """Poll `condition` until true; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout} s")
        time.sleep(every)
