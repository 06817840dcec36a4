"""Deletes finished Execution objects once their time-to-live passed, with their Approvals and Signals.

The rules are `expiry`'s; this is the glue. It hears of finished objects from the status writer
(when it writes a terminal phase, which it also does for every object the operator resumes) and
from the reconciler (an Execution refused before it ran, or whose history the store's retention
already removed), resolves each one's time-to-live once, and sleeps on the clock until the
earliest is due. Nothing of it is kept on disk: after a restart the resumed objects are noticed
again and their due times computed from their status, so a restart costs one row read per
finished object still in the API server, never a walk of the store's history.

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
from typing import Any

from ..runtime import Clock, EngineService, Wakeup
from .children import PARENT_LABEL
from .client import Approval, Execution, KubeApi, ObjectRef, Signal
from .expiry import EXPIRING_PHASES, ExpiryQueue, TtlPolicy, due_at_ms
from .names import object_name
from .rate_limit import TokenBucket

__all__ = ["ExecutionExpirer"]

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
    ) -> None:
        """`bucket`: the API write budget shared with the status writer, so a burst of deletions
        (the first start after an upgrade that sets a default) never crowds out status writes;
        `concurrency`: objects deleted at once (each takes four reads and a few deletes)."""
        self.engine = engine
        self.api = api
        self.clock = clock
        self.policy = policy
        self.bucket = bucket
        self.batch = batch
        self.retry_s = retry_s
        self.queue: ExpiryQueue[ObjectRef] = ExpiryQueue()
        self.deleted = 0
        self._noticed: dict[ObjectRef, tuple[dict[str, JSON], str | None]] = {}
        # Noticed objects whose time-to-live could not be read (the store unavailable): when to try again.
        self._look_again: dict[ObjectRef, tuple[int, tuple[dict[str, JSON], str | None]]] = {}
        self._wakeup = Wakeup(clock=clock)
        self._slots = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        return not self._noticed and not self.queue and not self._look_again

    def notice(self, ref: ObjectRef, status: Mapping[str, JSON], *, run_id: str | None) -> None:
        """The object `ref` shows `status`; `run_id`: the engine run it shows (its spec says the
        time-to-live), None for an object with no history in the store (the default applies)."""
        if status.get("phase") not in EXPIRING_PHASES:
            return
        self._noticed[ref] = (dict(status), run_id)
        self._wakeup.poke()

    def expire_now(self, ref: ObjectRef) -> None:
        """The object's history is gone from the store (the retention period removed it, so it is past
        every time-to-live the cap allows): the object goes at once, whatever its status says."""
        self._noticed.pop(ref, None)
        self.queue.put(ref, self.clock.now_ms())
        self._wakeup.poke()

    def on_finished(self, ref: ObjectRef, status: dict[str, JSON] | None) -> None:
        """The status writer's finish listener: the status it projected names the run it shows;
        None when the history is gone from the store."""
        if status is None:
            self.expire_now(ref)
            return
        run_id = status.get("runId")
        self.notice(ref, status, run_id=run_id if isinstance(run_id, str) else None)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._wakeup.run(self._step), name="execution-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _step(self) -> float | None:
        """Schedule what was noticed, delete what is due; seconds until the next is due."""
        now = self.clock.now_ms()
        for ref, (at_ms, noticed) in list(self._look_again.items()):
            if at_ms <= now:
                del self._look_again[ref]
                self._noticed.setdefault(ref, noticed)
        while self._noticed:
            ref, (status, run_id) = self._noticed.popitem()
            try:
                ttl_ms = self.policy.ttl_ms(await self._declared_ttl(run_id))
            except Exception:
                log.exception("the time-to-live of %r is unknown; looking again in %.0f s", ref, self.retry_s)
                self._look_again[ref] = (self.clock.now_ms() + round(self.retry_s * 1000), (status, run_id))
                continue
            due = due_at_ms(status, ttl_ms=ttl_ms)
            if due is None:
                self.queue.discard(ref)
            else:
                self.queue.put(ref, due)
        due_now = self.queue.pop_due(self.clock.now_ms(), limit=self.batch)
        await asyncio.gather(*(self._delete_or_retry(ref) for ref in due_now))
        dues = [at_ms for at_ms, _ in self._look_again.values()]
        due = self.queue.next_due_ms()
        if due is not None:
            dues.append(due)
        return max(0.0, (min(dues) - self.clock.now_ms()) / 1000) if dues else None

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
