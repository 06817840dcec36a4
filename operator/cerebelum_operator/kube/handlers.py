"""The kopf handlers: thin glue from kopf's calls to `Reconciler` methods and back to patches."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kopf

from .reconciler import PAUSED_ANNOTATION, ObjectView, Outcome, Reconciler, Retry
from .resources import GROUP, VERSION
from .status_writer import TERMINAL_PHASES

__all__ = ["build_registry"]

log = logging.getLogger(__name__)


def build_registry(
    reconciler: Reconciler, *, on_execution_seen: Callable[[str], None] | None = None
) -> kopf.OperatorRegistry:
    """A fresh registry (not kopf's global one), so the handlers exist only in an operator we start.

    `on_execution_seen`: told the uid of each Execution once its handler ran (`catch_up.CatchUp`)."""
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
        try:
            outcome = await reconciler.approval_created(view)
        except Retry as wait:
            raise kopf.TemporaryError(str(wait), delay=wait.delay_s) from None
        await apply(outcome, view, "Approval", patch)

    @kopf.on.resume(GROUP, VERSION, "signals", registry=registry)
    @kopf.on.create(GROUP, VERSION, "signals", registry=registry)
    async def signal_created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        view = ObjectView.of(body)
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
