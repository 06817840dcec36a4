"""What taking or handing over a shard means for the Kubernetes objects (several operator replicas).

`ShardKeeper` holds this replica's shards through Leases; `ShardHost` moves the engine's work; this
class moves the objects':

- **Adopt** (a shard arrives): the watch filter (`shard_watch.ShardWatch`) lets its objects through
  from now on, but kopf would see each only at its next event, so they are listed (paged) and
  handled at once, as kopf's resume would: each unfinished Execution of the shard is started (one
  created while the shard had no owner) or tracked for its status, each pending Approval or
  Signal aimed at it is delivered, and with shard 0 each Schedule is put into the engine's
  schedule service. An Execution or Schedule deleted while its shard had no owner (its deletion
  reached no kopf, and nothing else would) is touched: an annotation write whose watch event brings
  kopf's delete handler (the cancel, the schedule's stop) and the finalizer's removal, exactly as
  a deletion seen live would. An unfinished Execution no kopf has handled yet gets kopf's
  finalizer before it is started, as kopf would put it on, so that its deletion waits for the
  cancel. A handler that asks to wait (`Retry`: its Workflow is not there yet, say) is tried again
  after the wait it asked for, a few times, as kopf would.
- **Hand over** (a shard leaves): its objects' status is no longer written here (the next owner's
  writer projects them) and kopf's memory of them goes, so that if the shard comes back its objects
  are handled as new.
- **Hand on**: an Approval or Signal that reached this replica although its Execution is another
  replica's (the Execution was not watched yet) gets the shard written on it as an annotation; the
  event that write causes reaches the owner, whose filter now admits it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from lightkube import operators

from ..runtime import Clock
from .bookkeeping import ExecutionsInMemory
from .client import Approval, Execution, KubeApi, Schedule, Signal
from .expirer import FINISHED_LABEL
from .expiry import EXPIRING_PHASES
from .projection import rfc3339
from .reconciler import Reconciler
from .shard_watch import SHARD_LABEL, ShardWatch
from .status_writer import FINALIZER
from .views import ObjectView, Outcome, Retry

__all__ = ["DELETION_ADOPTED_ANNOTATION", "ShardObjects"]

log = logging.getLogger(__name__)

JSON = Any
_RETRIES = 6  # a handler that keeps asking to wait is left to the next event (or adoption)
ADOPTING_AT_ONCE = 32  # objects of a shard that arrived, handled at once
# Written on an object whose deletion no replica saw, when its shard is adopted (RFC 3339, so each
# adoption changes it and makes a watch event).
DELETION_ADOPTED_ANNOTATION = "cerebelum.io/deletion-adopted"


def deleted_with_finalizer(obj: dict[str, JSON]) -> bool:
    """Deleted, and waiting for our finalizer: only kopf's delete handler lets it go."""
    metadata = obj.get("metadata") or {}
    return bool(metadata.get("deletionTimestamp")) and FINALIZER in (metadata.get("finalizers") or ())


class ShardObjects:
    def __init__(
        self,
        reconciler: Reconciler,
        api: KubeApi,
        watch: ShardWatch,
        diffbase: ExecutionsInMemory,
        *,
        clock: Clock,
        namespaces: tuple[str, ...] = (),
        page: int = 500,
    ) -> None:
        self.reconciler = reconciler
        self.api = api
        self.watch = watch
        self.diffbase = diffbase
        self.clock = clock
        self.namespaces = namespaces
        self.page = page
        self.adopted = 0  # objects handled by adoption
        self.on_seen: Callable[[str], None] | None = None  # told the uid of each Execution adopted
        self._retries: set[asyncio.Task[None]] = set()

    async def adopt(self, shards: Collection[int]) -> None:
        """Handle, now, every object of these shards (just taken) that needs the operator: up to
        `ADOPTING_AT_ONCE` at a time (a replica that died leaves hundreds; one by one, each a few
        store and API round trips, they started at about 30 a second)."""
        wanted = set(shards)
        reconciler = self.reconciler
        running: set[asyncio.Task[None]] = set()
        room = asyncio.Semaphore(ADOPTING_AT_ONCE)

        async def handle(view: ObjectView, kind: str, call: Callable[[ObjectView], Awaitable[Outcome]]) -> None:
            try:
                await self._handle(view, kind, call)
                if kind == "Execution" and self.on_seen is not None:
                    self.on_seen(view.uid)
            finally:
                room.release()

        async def soon(view: ObjectView, kind: str, call: Callable[[ObjectView], Awaitable[Outcome]]) -> None:
            await room.acquire()
            task = asyncio.create_task(handle(view, kind, call), name=f"adopt-{kind}-{view.uid}")
            running.add(task)
            task.add_done_callback(running.discard)

        try:
            async for obj in self.api.list_labelled(
                Execution, self.namespaces, labels={FINISHED_LABEL: operators.not_exists()}, page=self.page
            ):
                self.watch.admits("executions", {"type": "ADDED", "object": obj})  # known to the filter from now on
                if self.watch.shard_of_object(obj) not in wanted:
                    continue
                if deleted_with_finalizer(obj):  # finished or not: kopf drops the finalizer
                    await soon(ObjectView.of(obj), "Execution", lambda v: self._touch(v, "Execution"))
                    continue
                if (obj.get("metadata") or {}).get("deletionTimestamp"):
                    continue  # deleted before kopf's finalizer was on it: nothing to start or stop
                if (obj.get("status") or {}).get("phase") in EXPIRING_PHASES:
                    continue  # finished: its status is final, kopf labels it at its next event
                finalized = FINALIZER in ((obj.get("metadata") or {}).get("finalizers") or ())
                await soon(
                    ObjectView.of(obj), "Execution", functools.partial(self._execution_adopted, finalized=finalized)
                )
            for kind, resource, request in (
                ("Approval", Approval, reconciler.approval_created),
                ("Signal", Signal, reconciler.signal_created),
            ):
                async for obj in self.api.list_labelled(resource, self.namespaces, labels={}, page=self.page):
                    if (obj.get("status") or {}).get("phase") or self.watch.request_shard(obj) not in wanted:
                        continue
                    await soon(ObjectView.of(obj), kind, request)
            if 0 in wanted:
                async for obj in self.api.list_labelled(Schedule, self.namespaces, labels={}, page=self.page):
                    if deleted_with_finalizer(obj):
                        await soon(ObjectView.of(obj), "Schedule", lambda v: self._touch(v, "Schedule"))
                        continue
                    if (obj.get("metadata") or {}).get("deletionTimestamp"):
                        continue
                    await soon(
                        ObjectView.of(obj), "Schedule", lambda v: reconciler.schedule_changed(v, first_attempt=False)
                    )
        finally:
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    def hand_over(self, shards: Collection[int]) -> None:
        """These shards left: stop writing their objects' status and forget what kopf kept of them."""
        uids = self.watch.uids_in(set(shards))
        self.reconciler.writer.forget_objects(uids)
        for uid in uids:
            self.diffbase.forget(uid)

    async def hand_on(self, request: ObjectView, kind: str) -> bool:
        """Whether `request` (an Approval or a Signal) belongs to another replica; if so, the shard of
        its Execution is written on it, so that its owner's filter admits it."""
        target = request.spec.get("execution")
        shard = self.watch.target_shard(request.namespace, target)
        if shard is None and isinstance(target, str):
            found = await self.api.get(Execution, request.namespace, target)
            shard = None if found is None else self.watch.shard_of_object(found)
        if shard is None or self.watch.owns(shard):
            return False
        log.info("%s %s/%s is for shard %d: handed on to its owner", kind, request.namespace, request.name, shard)
        await self.api.mark(request.ref(kind), annotations={SHARD_LABEL: str(shard)})
        return True

    async def stop(self) -> None:
        for task in list(self._retries):
            task.cancel()
        if self._retries:
            await asyncio.gather(*self._retries, return_exceptions=True)

    async def _execution_adopted(self, view: ObjectView, *, finalized: bool) -> Outcome:
        """Start or track an unfinished Execution of an arriving shard, kopf's finalizer on it first.

        One created while its shard had no owner, or whose owner's kopf had not yet handled it, never
        got the finalizer: deleted later, it would go at once and its execution run on, cancelled by
        nobody. As kopf does, the finalizer is put on before the execution starts; an object deleted
        meanwhile is not started.
        """
        if not finalized:
            await self.reconciler.writes.take()
            if not await self.api.add_finalizer(view.ref("Execution"), FINALIZER):
                log.info("Execution %s/%s went while its shard was adopted: not started", view.namespace, view.name)
                return Outcome()
        return await self.reconciler.execution_seen(view, first_attempt=False)

    async def _touch(self, view: ObjectView, kind: str) -> Outcome:
        """Make a watch event for an object deleted while its shard had no owner: this replica's kopf
        now sees it deleted and runs its delete handler, then drops the finalizer (retrying as kopf does)."""
        await self.reconciler.writes.take()
        at = rfc3339(self.clock.now_ms()) or ""
        if await self.api.mark(view.ref(kind), annotations={DELETION_ADOPTED_ANNOTATION: at}):
            log.info(
                "%s %s/%s was deleted while its shard had no owner: handed to kopf's delete handler",
                kind,
                view.namespace,
                view.name,
            )
        return Outcome()

    async def _handle(
        self, view: ObjectView, kind: str, handle: Callable[[ObjectView], Awaitable[Outcome]], attempt: int = 0
    ) -> None:
        try:
            outcome = await handle(view)
        except Retry as wait:
            if attempt + 1 < _RETRIES:
                self._later(view, kind, handle, delay_s=wait.delay_s, attempt=attempt + 1)
            return
        except Exception:
            log.exception("adopting %s %s/%s failed", kind, view.namespace, view.name)
            return
        self.adopted += 1
        if outcome.status:
            await self.reconciler.writes.take()
            await self.api.patch_status(view.ref(kind), outcome.status)
        if outcome.event is not None:
            type_, reason, note = outcome.event
            await self.reconciler.writes.take()
            await self.api.post_event(view.ref(kind), type_=type_, reason=reason, note=note, action="Reconcile")

    def _later(
        self,
        view: ObjectView,
        kind: str,
        handle: Callable[[ObjectView], Awaitable[Outcome]],
        *,
        delay_s: float,
        attempt: int,
    ) -> None:
        async def again() -> None:
            await self.clock.sleep(delay_s)
            await self._handle(view, kind, handle, attempt)

        task = asyncio.create_task(again(), name=f"adopt-{kind}-{view.uid}")
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)
