"""The store's retention period: an execution that ended that long ago is removed from the store, its
history first written to a JSON-lines file when an export directory is set (issue 19).

What goes is recorded (`RetiredExecution`), so asking for the execution afterwards says when it went
and where its history is (`EngineService.missing`). A removal is one transaction; the export is
written before it, whole, under its final name, so a crash in between only writes it again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from ..engine.events import RecordedEvent
from ..engine.timer_steps import rfc3339
from ..store import StoreUnavailable
from .clock import Clock
from .database import Database
from .engine_service import EngineService

__all__ = ["RetentionService", "export_path", "write_export"]

log = logging.getLogger(__name__)


def export_path(directory: Path, execution_id: str) -> Path:
    """Where an execution's history is exported: its id made a file name (``/`` and the like escaped)."""
    return directory / f"{quote(execution_id, safe='')}.jsonl"


def write_export(directory: Path, execution_id: str, events: Sequence[RecordedEvent]) -> Path:
    """Write the history as JSON lines, one event a line as `cerebelum history -o json` shows it
    (``cerebelum replay`` reads the file), atomically: a temporary file renamed once synced."""
    directory.mkdir(parents=True, exist_ok=True)
    target = export_path(directory, execution_id)
    partial = target.with_name(target.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        for recorded in events:
            line = {"seq": recorded.seq, "type": recorded.event.kind, "at": rfc3339(recorded.at_ms)}
            out.write(json.dumps({**line, "data": recorded.event.to_data()}, separators=(",", ":")) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, target)
    return target


class RetentionService:
    """Removes ended executions ``period_ms`` after their last change, a batch at a time, on the clock."""

    def __init__(
        self,
        db: Database,
        engine: EngineService,
        *,
        clock: Clock,
        period_ms: int,
        export_dir: Path | None = None,
        interval_s: float | None = None,
        batch: int = 200,
    ) -> None:
        """``interval_s``: how often to look for executions past the period; by default a tenth of the
        period, between 1 s and a minute."""
        if period_ms <= 0:
            raise ValueError("the retention period must be positive")
        self.db = db
        self.engine = engine
        self.clock = clock
        self.period_ms = period_ms
        self.export_dir = export_dir
        self.interval_s = interval_s if interval_s is not None else min(60.0, max(1.0, period_ms / 10_000))
        self.batch = batch
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def sweep(self) -> int:
        """Remove one batch of executions past the period; how many went."""
        cutoff = self.clock.now_ms() - self.period_ms
        ids: list[str] = await self.db.run(self.db.store.finished_before, cutoff, limit=self.batch)
        removed = 0
        for execution_id in ids:
            export = None
            if self.export_dir is not None:
                events = await self.engine.load_history(execution_id)
                written = await asyncio.to_thread(write_export, self.export_dir, execution_id, events)
                export = str(written)
            retired = await self.db.run(
                self.db.store.retire, execution_id, retired_at_ms=self.clock.now_ms(), export=export
            )
            if retired is not None:
                self.engine.forget(execution_id)
                removed += 1
        if removed:
            log.info("retention: removed %d executions that ended before %s", removed, rfc3339(cutoff))
        return removed

    async def _loop(self) -> None:
        while True:
            try:
                removed = await self.sweep()
            except StoreUnavailable as exc:
                log.warning("retention: the store is unavailable (%s); trying again later", exc)
                removed = 0
            # A full batch means more are due: go on at once (a turn of the loop lets others run).
            await self.clock.sleep(0 if removed >= self.batch else self.interval_s)
