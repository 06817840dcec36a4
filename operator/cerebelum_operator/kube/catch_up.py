"""Readiness that means caught up: every Execution the operator must follow has been handled once.

At start the operator lists, page by page, the Execution objects not labelled finished (what
kopf's watch lists too, `operator._settings`) and keeps the uids of those whose status is not
finished either (one finished before the label existed is labelled in the background, and its
status needs nothing: an upgrade's first restart does not wait for them). It is caught up once kopf's
handler has run for each of them (`seen`, whatever its outcome: one that waits for its Workflow
must not hold readiness for ever) and the status writer has projected, once, every object it
tracked by then, so a running execution's status is current. An object deleted before kopf saw
it is dropped when a later list (every `recheck_s` while some are awaited) no longer shows it.

Caught up is a latch: once reached it stays, so a burst of new Executions later never makes the
leader unready. Finished objects are not listed, so the wait does not grow with the history.
Readiness also admits the leader to the gRPC Service's endpoints: workers reach it once caught up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from lightkube import operators

from ..runtime import Clock
from .client import Execution, KubeApi
from .expirer import FINISHED_LABEL
from .expiry import EXPIRING_PHASES
from .status_writer import StatusWriter

__all__ = ["CatchUp"]

log = logging.getLogger(__name__)


class CatchUp:
    def __init__(
        self,
        api: KubeApi,
        writer: StatusWriter,
        *,
        clock: Clock,
        namespaces: tuple[str, ...] = (),
        recheck_s: float = 5.0,
        poll_s: float = 0.05,
        page: int = 500,
        wanted: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """`wanted`: which listed objects this replica must follow (several replicas: its shards')."""
        self.api = api
        self.wanted = wanted
        self.writer = writer
        self.clock = clock
        self.namespaces = namespaces
        self.recheck_s = recheck_s
        self.poll_s = poll_s
        self.page = page
        self.done = False
        self.awaited = 0  # Executions listed at start
        self.elapsed_s: float | None = None
        self._pending: set[str] | None = None  # None until the list is complete
        self._seen_early: set[str] = set()  # handled before the list was complete

    def seen(self, uid: str) -> None:
        """kopf's handler ran for the Execution with `uid` (resumed or created)."""
        if self.done:
            return
        if self._pending is None:
            self._seen_early.add(uid)
        else:
            self._pending.discard(uid)

    @property
    def pending(self) -> int | None:
        """Executions still awaited; None while the first list runs."""
        return None if self._pending is None else len(self._pending)

    async def _unfinished(self) -> set[str]:
        uids: set[str] = set()
        async for obj in self.api.list_labelled(
            Execution, self.namespaces, labels={FINISHED_LABEL: operators.not_exists()}, page=self.page
        ):
            if self.wanted is not None and not self.wanted(obj):
                continue
            if (obj.get("status") or {}).get("phase") not in EXPIRING_PHASES:  # finished, not labelled yet: no wait
                uids.add(str(obj["metadata"]["uid"]))
        return uids

    async def run(self) -> None:
        """Until caught up: list, wait for kopf's handler on each, then for the writer's first projections."""
        started = self.clock.now_s()
        listed = await self._unfinished()  # may raise: nothing has changed yet, so it may run again
        self.awaited = len(listed)
        self._pending = listed - self._seen_early
        self._seen_early.clear()
        recheck_at = self.clock.now_s() + self.recheck_s
        while self._pending:
            await self.clock.sleep(self.poll_s)
            if self._pending and self.clock.now_s() >= recheck_at:
                try:
                    self._pending &= await self._unfinished()  # deleted before kopf saw them
                except Exception as error:
                    log.warning("listing the Execution objects again failed (%r); trying again later", error)
                recheck_at = self.clock.now_s() + self.recheck_s
        projecting = self.writer.unwritten_ids()
        while projecting:
            await self.clock.sleep(self.poll_s)
            projecting &= self.writer.unwritten_ids()
        self.done = True
        self.elapsed_s = self.clock.now_s() - started
        log.info("caught up: %d Execution objects followed, in %.1f s", self.awaited, self.elapsed_s)
