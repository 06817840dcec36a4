"""The kopf handlers: thin glue from kopf's calls to `Reconciler` methods and back to patches."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from .expirer import FINISHED_LABEL
from .expiry import EXPIRING_PHASES
from .reconciler import PAUSED_ANNOTATION, ObjectView, Outcome, Reconciler, Retry
from .resources import GROUP, VERSION
from .status_writer import FINALIZER, TERMINAL_PHASES
from .views import plain

__all__ = ["build_registry", "mark_finished"]

log = logging.getLogger(__name__)


def mark_finished(body: dict[str, Any], *, annotations: Mapping[str, str | None]) -> None:
    """A kopf patch function: label the body finished, set (None: remove) `annotations`, drop our
    finalizer. kopf turns it into JSON-patch operations against the body it last saw."""
    meta = body.setdefault("metadata", {})
    meta.setdefault("labels", {})[FINISHED_LABEL] = "true"
    for key, value in annotations.items():
        if value is not None:
            meta.setdefault("annotations", {})[key] = value
        elif key in (meta.get("annotations") or {}):
            del meta["annotations"][key]
    finalizers = meta.get("finalizers") or []
    if FINALIZER in finalizers:
        meta["finalizers"] = [name for name in finalizers if name != FINALIZER]
        if not meta["finalizers"]:
            del meta["finalizers"]


def build_registry(
    reconciler: Reconciler,
    *,
    on_execution_seen: Callable[[str], None] | None = None,
    on_execution_gone: Callable[[str], None] | None = None,
    hand_on: Callable[[ObjectView, str], Awaitable[bool]] | None = None,
) -> kopf.OperatorRegistry:
    """A fresh registry (not kopf's global one), so the handlers exist only in an operator we start.

    `on_execution_seen`: told the uid of each Execution once its handler ran (`catch_up.CatchUp`);
    `on_execution_gone`: told the uid of each Execution that left the watch (labelled finished, or
    deleted), so what is kept in memory about it goes (`bookkeeping.ExecutionsInMemory`);
    `hand_on`: with several replicas, whether an Approval or Signal is another replica's, handed on
    to it (`shard_replica.ShardObjects.hand_on`)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    async def apply(outcome: Outcome, view: ObjectView, kind: str, patch: kopf.Patch) -> None:
        if outcome.status:
            patch.setdefault("status", {}).update(outcome.status)
        if outcome.event is not None:
            type_, reason, note = outcome.event
            await reconciler.writes.take()
            await reconciler.api.post_event(view.ref(kind), type_=type_, reason=reason, note=note, action="Reconcile")

    # Every Workflow event keeps its spec where an Execution's start reads it (`kube/watched.py`):
    # no GET of the Workflow per Execution.
    @kopf.on.event(GROUP, VERSION, "workflows", registry=registry)
    def workflow_watched(type: str | None, body: kopf.Body, **_: Any) -> None:
        meta = body.metadata
        if type == "DELETED":
            reconciler.workflows.gone(str(meta.namespace), str(meta.name))
        else:
            reconciler.workflows.seen(str(meta.namespace), str(meta.name), plain(body.get("spec") or {}))

    @kopf.on.resume(GROUP, VERSION, "workflows", registry=registry)
    @kopf.on.create(GROUP, VERSION, "workflows", registry=registry)
    @kopf.on.update(GROUP, VERSION, "workflows", field="spec", registry=registry)
    async def workflow_changed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        view = ObjectView.of(body)
        await apply(await reconciler.workflow_changed(view), view, "Workflow", patch)

    @kopf.on.resume(GROUP, VERSION, "executions", registry=registry)
    @kopf.on.create(GROUP, VERSION, "executions", registry=registry)
    async def execution_seen(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
        view = ObjectView.of(body)
        try:
            outcome = await reconciler.execution_seen(view, first_attempt=retry == 0)
        except Retry as wait:
            raise kopf.TemporaryError(str(wait), delay=wait.delay_s) from None
        finally:
            if on_execution_seen is not None:
                on_execution_seen(view.uid)
        await apply(outcome, view, "Execution", patch)

    @kopf.on.update(
        GROUP, VERSION, "executions", field=("metadata", "annotations", PAUSED_ANNOTATION), registry=registry
    )
    async def execution_paused(body: kopf.Body, **_: Any) -> None:
        await reconciler.execution_paused(ObjectView.of(body))

    def finished_unlabelled(type: str | None, status: kopf.Status, labels: kopf.Labels, **_: Any) -> bool:
        return type != "DELETED" and status.get("phase") in EXPIRING_PHASES and labels.get(FINISHED_LABEL) != "true"

    # Seen finished (its terminal status written, or listed so after an upgrade): labelled, which takes
    # it out of the watch, in the JSON patch that removes kopf's finalizer in this same cycle, so the
    # label costs no API write of its own.
    @kopf.on.event(GROUP, VERSION, "executions", when=finished_unlabelled, registry=registry)
    async def execution_finished(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        annotations = await reconciler.execution_finished(ObjectView.of(body))
        patch.fns.append(functools.partial(mark_finished, annotations=annotations))

    if on_execution_gone is not None:
        gone = on_execution_gone

        def left_the_watch(type: str | None, **_: Any) -> bool:
            return type == "DELETED"

        # DELETED is also what the watch says of an object labelled finished: it left the selector.
        @kopf.on.event(GROUP, VERSION, "executions", when=left_the_watch, registry=registry)
        def execution_gone(body: kopf.Body, **_: Any) -> None:
            gone(str(body.metadata.uid))

    def in_flight(status: kopf.Status, **_: Any) -> bool:
        return status.get("phase") not in TERMINAL_PHASES

    # kopf adds its finalizer (ours, by name) while this matches, and drops it once it no longer does:
    # a finalizer only while work is in flight, so finished Executions delete even with no operator.
    @kopf.on.delete(GROUP, VERSION, "executions", when=in_flight, registry=registry)
    async def execution_deleted(body: kopf.Body, **_: Any) -> None:
        await reconciler.execution_deleted(ObjectView.of(body))

    @kopf.on.resume(GROUP, VERSION, "approvals", registry=registry)
    @kopf.on.create(GROUP, VERSION, "approvals", registry=registry)
    async def approval_created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        view = ObjectView.of(body)
        if hand_on is not None and not view.status.get("phase") and await hand_on(view, "Approval"):
            return
        try:
            outcome = await reconciler.approval_created(view)
        except Retry as wait:
            raise kopf.TemporaryError(str(wait), delay=wait.delay_s) from None
        await apply(outcome, view, "Approval", patch)

    @kopf.on.resume(GROUP, VERSION, "signals", registry=registry)
    @kopf.on.create(GROUP, VERSION, "signals", registry=registry)
    async def signal_created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        view = ObjectView.of(body)
        if hand_on is not None and not view.status.get("phase") and await hand_on(view, "Signal"):
            return
        try:
            outcome = await reconciler.signal_created(view)
        except Retry as wait:
            raise kopf.TemporaryError(str(wait), delay=wait.delay_s) from None
        await apply(outcome, view, "Signal", patch)

    @kopf.on.resume(GROUP, VERSION, "schedules", registry=registry)
    @kopf.on.create(GROUP, VERSION, "schedules", registry=registry)
    @kopf.on.update(GROUP, VERSION, "schedules", field="spec", registry=registry)
    async def schedule_changed(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
        view = ObjectView.of(body)
        try:
            outcome = await reconciler.schedule_changed(view, first_attempt=retry == 0)
        except Retry as wait:
            raise kopf.TemporaryError(str(wait), delay=wait.delay_s) from None
        await apply(outcome, view, "Schedule", patch)

    # A finalizer (kopf's, named ours): the engine's schedule must stop before the object goes.
    @kopf.on.delete(GROUP, VERSION, "schedules", registry=registry)
    async def schedule_deleted(body: kopf.Body, **_: Any) -> None:
        await reconciler.schedule_deleted(ObjectView.of(body))

    return registry
