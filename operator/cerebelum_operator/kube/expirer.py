"""Deletes finished Execution objects once their time-to-live passed, with their Approvals and Signals.

The rules are `expiry`'s; this is the glue. It hears of finished objects from kopf's event handler
(`handlers.execution_finished`: the first time the operator sees an Execution finished, when it
also labels the object `cerebelum.io/finished` with the time-to-live its run started with in an
annotation, `reconciler.execution_finished`), and from the status writer when the store no longer
has a history (the retention period removed it: the object goes at once). It sleeps on the clock
until the earliest is due.

The label takes the object out of kopf's watch (`operator._settings`): a restart neither lists nor
handles it again. What is finished is learnt again after a restart by a sweep: a paged list of the
labelled objects, each one's due time computed from its own status (`finishedAt`) and annotation,
with no store read and no replay. The sweep runs once the operator has caught up (`start_sweeps`),
then every `horizon_s`; only objects due before the next sweep are kept in memory, so memory does
not grow with the number of finished objects either. Nothing of it is kept on disk.

Deleting an object never touches the store: a finished Execution carries no finalizer (kopf's is
there only while work is in flight), so the delete handler that would cancel does not run, and
`cerebelum history` still answers until the store's own retention period removes the history.
Approvals and Signals name their Execution (`spec.execution`, a selectable field) rather than
carry an owner reference, so they are deleted here first, not left to a garbage collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..runtime import Clock, EngineService, Wakeup
from .children import PARENT_LABEL
from .client import Approval, Execution, KubeApi, ObjectRef, Signal
from .expiry import EXPIRING_PHASES, ExpiryQueue, TtlPolicy, due_at_ms
from .names import object_name
from .rate_limit import TokenBucket

__all__ = ["FINISHED_LABEL", "TTL_ANNOTATION", "ExecutionExpirer"]

# On a finished Execution object: what takes it out of the operator's watch (a label selector).
FINISHED_LABEL = "cerebelum.io/finished"
# On a finished Execution object: the ttlAfterFinished its run started with (absent: none declared).
TTL_ANNOTATION = "cerebelum.io/ttl-after-finished"


@dataclass
class _Noticed:
    """A finished object heard of: the status fields `expiry` reads, the run it shows (None: no
    history in the store), and the ttlAfterFinished its run declared, once known."""

    status: dict[str, Any]
    run_id: str | None
    known: bool = False
    declared: str | None = None


def _due_fields(status: Mapping[str, JSON]) -> dict[str, JSON]:
    """What `expiry.due_at_ms` reads of a status: nothing else of it is kept."""
    kept = {key: status.get(key) for key in ("phase", "finishedAt")}
    if not status.get("finishedAt"):
        kept["conditions"] = [
            {"lastTransitionTime": entry.get("lastTransitionTime")}
            for entry in status.get("conditions") or []
            if isinstance(entry, Mapping)
        ]
    return kept


log = logging.getLogger(__name__)

JSON = Any


class ExecutionExpirer:
    def __init__(
        self,
        engine: EngineService,
        api: KubeApi,
        *,
        clock: Clock,
        policy: TtlPolicy,
        bucket: TokenBucket,
        batch: int = 50,
        concurrency: int = 8,
        retry_s: float = 60.0,
        namespaces: tuple[str, ...] = (),
        horizon_s: float = 3600.0,
        page: int = 500,
    ) -> None:
        """`bucket`: the API write budget shared with the status writer, so a burst of deletions
        (the first start after an upgrade that sets a default) never crowds out status writes;
        `concurrency`: objects deleted at once (a delete takes four reads and a few
        deletes); `namespaces`: where the sweep lists (none: all); `horizon_s`: how often it sweeps,
        hence how far ahead due times are kept in memory; `page`: objects per list request."""
        self.engine = engine
        self.api = api
        self.clock = clock
        self.policy = policy
        self.bucket = bucket
        self.batch = batch
        self.retry_s = retry_s
        self.namespaces = namespaces
        self.horizon_ms = round(horizon_s * 1000)
        self.page = page
        self.queue: ExpiryQueue[ObjectRef] = ExpiryQueue()
        self.deleted = 0
        self.swept = 0  # finished objects the sweeps listed
        self._noticed: dict[ObjectRef, _Noticed] = {}
        # Noticed objects whose time-to-live could not be read (the store unavailable): when to try again.
        self._look_again: dict[ObjectRef, tuple[int, _Noticed]] = {}
        self._next_sweep_ms: int | None = None  # None: sweeps not started (every due time is kept)
        self._wakeup = Wakeup(clock=clock)
        self._slots = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        return not self._noticed and not self.queue and not self._look_again

    def notice(
        self, ref: ObjectRef, status: Mapping[str, JSON], *, run_id: str | None, declared: str | None = None
    ) -> None:
        """The object `ref` shows `status`; `run_id`: the engine run it shows (its spec says the
        time-to-live), None when that is known already (`declared`, the run's ttlAfterFinished) or
        for an object with no history in the store (the default applies)."""
        if status.get("phase") not in EXPIRING_PHASES:
            return
        self._noticed[ref] = _Noticed(_due_fields(status), run_id, known=run_id is None, declared=declared)
        self._wakeup.poke()

    def start_sweeps(self) -> None:
        """Learn the labelled objects from the API server now, and again every `horizon_s`."""
        if self._next_sweep_ms is None:
            self._next_sweep_ms = self.clock.now_ms()
            self._wakeup.poke()

    def expire_now(self, ref: ObjectRef) -> None:
        """The object's history is gone from the store (the retention period removed it, so it is past
        every time-to-live the cap allows): the object goes at once, whatever its status says."""
        self._noticed.pop(ref, None)
        self.queue.put(ref, self.clock.now_ms())
        self._wakeup.poke()

    def on_finished(self, ref: ObjectRef, status: dict[str, JSON] | None) -> None:
        """The status writer's finish listener: None when the history is gone from the store (the
        object goes at once); a finished status is learnt from kopf's event handler instead, with
        the label it writes."""
        if status is None:
            self.expire_now(ref)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._wakeup.run(self._step), name="execution-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _schedule(self, ref: ObjectRef, due: int | None) -> None:
        """Keep `ref`'s due time if it falls before the next sweep (that sweep finds it otherwise)."""
        if due is None or (self._next_sweep_ms is not None and due >= self._next_sweep_ms):
            self.queue.discard(ref)
        else:
            self.queue.put(ref, due)

    async def _step(self) -> float | None:
        """Sweep when a sweep is due, schedule what was noticed, delete what is due; seconds until the next is due."""
        now = self.clock.now_ms()
        if self._next_sweep_ms is not None and self._next_sweep_ms <= now:
            await self._sweep()
        for ref, (at_ms, noticed) in list(self._look_again.items()):
            if at_ms <= now:
                del self._look_again[ref]
                self._noticed.setdefault(ref, noticed)
        while self._noticed:
            ref, noticed = self._noticed.popitem()
            try:
                declared = noticed.declared if noticed.known else await self._declared_ttl(noticed.run_id)
            except Exception:
                log.exception("the time-to-live of %r is unknown; looking again in %.0f s", ref, self.retry_s)
                self._look_again[ref] = (self.clock.now_ms() + round(self.retry_s * 1000), noticed)
                continue
            self._schedule(ref, due_at_ms(noticed.status, ttl_ms=self.policy.ttl_ms(declared)))
        due_now = self.queue.pop_due(self.clock.now_ms(), limit=self.batch)
        await asyncio.gather(*(self._delete_or_retry(ref) for ref in due_now))
        dues = [at_ms for at_ms, _ in self._look_again.values()]
        due = self.queue.next_due_ms()
        if due is not None:
            dues.append(due)
        if self._next_sweep_ms is not None:
            dues.append(self._next_sweep_ms)
        return max(0.0, (min(dues) - self.clock.now_ms()) / 1000) if dues else None

    async def _sweep(self) -> None:
        """List the labelled objects page by page; keep the due times that fall before the next sweep.

        An object labelled finished whose status is not (a label set by hand) loses the label, so
        the operator's watch sees it again."""
        now = self.clock.now_ms()
        self._next_sweep_ms = now + self.horizon_ms
        listed = 0
        try:
            async for obj in self.api.list_labelled(
                Execution, self.namespaces, labels={FINISHED_LABEL: "true"}, page=self.page
            ):
                listed += 1
                meta = obj.get("metadata") or {}
                status = obj.get("status") or {}
                ref = ObjectRef(
                    kind="Execution", namespace=str(meta["namespace"]), name=str(meta["name"]), uid=str(meta["uid"])
                )
                if status.get("phase") not in EXPIRING_PHASES:
                    log.warning("%r is labelled %s but has not finished: unlabelled", ref, FINISHED_LABEL)
                    await self.bucket.take()
                    await self.api.mark(ref, labels={FINISHED_LABEL: None})
                    continue
                declared = (meta.get("annotations") or {}).get(TTL_ANNOTATION)
                self._schedule(ref, due_at_ms(status, ttl_ms=self.policy.ttl_ms(declared)))
        except Exception:
            log.exception("listing the finished Execution objects failed; sweeping again in %.0f s", self.retry_s)
            self._next_sweep_ms = self.clock.now_ms() + round(self.retry_s * 1000)
        self.swept += listed
        log.info("swept %d finished Execution objects; %d due before the next sweep", listed, len(self.queue))

    async def _delete_or_retry(self, ref: ObjectRef) -> None:
        async with self._slots:
            try:
                await self._delete(ref)
            except Exception as error:
                log.warning("could not delete %r (%r); trying again in %.0f s", ref, error, self.retry_s)
                self._retry(ref)

    def _retry(self, ref: ObjectRef) -> None:
        self.queue.put(ref, self.clock.now_ms() + round(self.retry_s * 1000))

    async def _declared_ttl(self, run_id: str | None) -> str | None:
        """The ``ttlAfterFinished`` of the spec the run started with (what its Workflow said then)."""
        if run_id is None:
            return None
        row = await self.engine.get_execution(run_id)
        declared = None if row is None else row.spec.get("ttlAfterFinished")
        return declared if isinstance(declared, str) else None

    async def _delete(self, ref: ObjectRef) -> None:
        """Its Approvals and Signals, then the object itself, only while it is still that object (by uid).

        A parent's object waits for its children's objects to go first: deleting it would have a
        garbage collector delete them too, cancelling a child that runs on (abandoned), and without
        one they would be left with no owner, which is how a forged child looks.
        """
        current = await self.api.get(Execution, ref.namespace, ref.name)
        if current is None or str(current["metadata"].get("uid")) != ref.uid:
            return  # deleted already (and perhaps made again: a namesake is not ours to touch)
        if await self.api.list_selected(Execution, ref.namespace, labels={PARENT_LABEL: ref.uid}):
            log.debug("%r waits for its children's Execution objects to go first", ref)
            self._retry(ref)
            return
        execution = {"spec.execution": object_name(ref.name, field="name")}
        for kind in (Approval, Signal):
            for name, uid in await self.api.list_selected(kind, ref.namespace, fields=execution):
                await self.bucket.take()
                await self.api.delete(kind, ref.namespace, name, uid=uid)
        await self.bucket.take()
        if await self.api.delete(Execution, ref.namespace, ref.name, uid=ref.uid):
            self.deleted += 1
            log.info("deleted %r: its time-to-live passed (its history stays in the store)", ref)
