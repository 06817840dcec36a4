"""Schedule objects: the Kubernetes form of the engine's schedules (`runtime/schedules.py`).

The reconciler puts each Schedule into the `ScheduleService` under the key ``namespace/name``,
its `spec.workflow` (a Workflow's name in the Schedule's namespace) turned into the workflow key
``namespace/workflow``. The service fires it, durably: its store row keeps the cursor, so a
restarted operator re-puts an unchanged spec (which changes nothing) and the service settles what
came due meanwhile, once per due time.

Each execution a fire starts becomes an Execution object here, in the Schedule's namespace,
controlled by the Schedule (ownerReference, label `cerebelum.io/schedule`), annotated with the
engine id as a child's object is (`kube/children.py`): the reconciler views that engine
execution instead of starting one, once `verify_scheduled` found that this very Schedule fired
it. The schedule's status (last and next fire, counts, the latest fires) is written by
`ScheduleObjects` when the service reports a write, coalesced per Schedule and paid from the
shared API write budget.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ..engine.schedule_spec import ScheduleSpec
from ..engine.schedules import Outcome as FireOutcome
from ..engine.schedules import execution_id as scheduled_id
from ..engine.schedules import trigger_execution_id
from ..model.limits import MAX_EXECUTION_ID
from ..runtime import Clock, ExecutionNotFound, ScheduleService, ScheduleView, WorkflowKey, namespace_of
from .children import CHILD_ANNOTATION, ChildRefused, Owner, owned_execution_body, stamp_shard
from .client import Execution, ObjectRef
from .names import child_object_name, namespace_name, object_name
from .projection import rfc3339
from .rate_limit import TokenBucket
from .views import JSON

__all__ = [
    "MAX_STATUS_FIRES",
    "SCHEDULE_LABEL",
    "ScheduleObjects",
    "fired_by",
    "project_schedule",
    "schedule_execution_body",
    "schedule_key",
    "scheduled_object_name",
    "timing",
    "verify_scheduled",
]

log = logging.getLogger(__name__)

SCHEDULE_LABEL = "cerebelum.io/schedule"
MAX_STATUS_FIRES = 10  # the latest fires shown in status.recentFires
_REASON = 256  # characters of a fire's reason shown in the status
_REMEMBERED = 10_000  # executions whose object was already seen to
_EPOCH_STAMP = "-19700101T000000Z"
_DUE = re.compile(r"\d{8}T\d{6}Z")
_TRIGGERED = re.compile(r"trigger-(\d{8}T\d{6})\.(\d{3})Z")
_STARTED = frozenset({FireOutcome.STARTED, FireOutcome.TRIGGERED})


def schedule_key(namespace: str, name: str) -> str:
    """The engine's key of a Schedule object: ``namespace/name`` (both checked as Kubernetes names)."""
    return f"{namespace_name(namespace)}/{object_name(name, field='metadata.name')}"


def _id_base(key: str) -> str:
    """The part every execution id of schedule `key` starts with (the engine's, recomputed)."""
    return scheduled_id(key, 0)[: -len(_EPOCH_STAMP)]


def fired_by(key: str, claimed: str) -> bool:
    """Whether `claimed` is an id schedule `key` gives: a due time's, or a trigger's (recomputed, not parsed)."""
    base = _id_base(key) + "-"
    if not claimed.startswith(base):
        return False
    rest = claimed[len(base) :]
    try:
        if _DUE.fullmatch(rest):
            due = datetime.strptime(rest, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            return scheduled_id(key, int(due.timestamp()) * 1000) == claimed
        triggered = _TRIGGERED.fullmatch(rest)
        if triggered:
            moment = datetime.strptime(triggered.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
            return trigger_execution_id(key, int(moment.timestamp()) * 1000 + int(triggered.group(2))) == claimed
    except ValueError:  # digits that are no time (a 99th second): no schedule gave it
        return False
    return False


def scheduled_object_name(schedule_name: str, key: str, engine_id: str) -> str:
    """``<schedule>-<due time, lowercased>-<8 hex>``: deterministic, so a repeated create finds its first."""
    stamp = engine_id.removeprefix(_id_base(key) + "-")
    return child_object_name(schedule_name, stamp, engine_id)


def schedule_execution_body(
    schedule: ObjectRef, *, key: str, engine_id: str, workflow: str, input: JSON
) -> dict[str, JSON]:
    """The Execution object of an execution the Schedule `schedule` started."""
    return owned_execution_body(
        schedule,
        name=scheduled_object_name(schedule.name, key, engine_id),
        execution_id=engine_id,
        labels={SCHEDULE_LABEL: schedule.name},
        annotations={},
        workflow=workflow,
        input=input,
    )


class Engine(Protocol):
    async def get_execution(self, execution_id: str) -> Any: ...

    async def state_of(self, execution_id: str) -> Any: ...


async def verify_scheduled(engine: Engine, *, namespace: str, claimed: object, owner: Owner, owner_found: bool) -> str:
    """The engine id an Execution owned by Schedule `owner` may view, or `ChildRefused` naming why.

    `owner_found`: the owner Schedule exists in this namespace with the uid the reference names.
    The id must be one that Schedule's key gives (recomputed: a due time's or a trigger's) and an
    execution of this namespace that the engine runs.
    """
    if not isinstance(claimed, str) or not claimed or len(claimed) > MAX_EXECUTION_ID:
        raise ChildRefused(f"annotation {CHILD_ANNOTATION} is not an execution id of at most {MAX_EXECUTION_ID}")
    if not owner_found:
        raise ChildRefused(f"the owner Schedule {owner.name!r} (uid {owner.uid}) is not in this namespace")
    try:
        key = schedule_key(namespace, owner.name)
    except ValueError as invalid:
        raise ChildRefused(str(invalid)) from None
    if not fired_by(key, claimed):
        raise ChildRefused(
            f"engine execution {claimed!r} was not started by the Schedule {owner.name!r}:"
            " only the operator creates the Executions of a Schedule"
        )
    try:
        state = await engine.state_of(claimed)
    except ExecutionNotFound:
        raise ChildRefused(
            f"annotation {CHILD_ANNOTATION} names engine execution {claimed!r}, which does not exist"
        ) from None
    if namespace_of(state.workflow) != namespace:
        raise ChildRefused(f"engine execution {claimed!r} is not an execution of namespace {namespace}")
    return claimed


def timing(spec: ScheduleSpec) -> str:
    """The timing in one line, for `kubectl get schedules`."""
    if spec.cron is not None:
        return spec.cron if spec.timezone == "UTC" else f"{spec.cron} ({spec.timezone})"
    offset = f" +{spec.offset}" if spec.offset else ""
    return f"every {spec.interval}{offset}"


def project_schedule(view: ScheduleView, *, schedule_name: str) -> dict[str, JSON]:
    """The Schedule's status fields the engine's view gives (conditions are the reconciler's)."""
    state = view.state
    fires: list[dict[str, JSON]] = []
    for fire in state.recent[-MAX_STATUS_FIRES:]:
        shown: dict[str, JSON] = {
            "dueTime": rfc3339(fire.due_ms),
            "firedAt": rfc3339(fire.at_ms),
            "outcome": fire.outcome.value,
        }
        if fire.execution_id is not None:
            shown["executionId"] = fire.execution_id
            if fire.outcome in _STARTED:
                shown["execution"] = scheduled_object_name(schedule_name, view.key, fire.execution_id)
        if fire.reason:
            shown["reason"] = fire.reason[:_REASON]
        if fire.count > 1:
            shown["count"] = fire.count
        fires.append(shown)
    return {
        "schedule": timing(view.spec),
        "paused": view.spec.paused,
        "note": view.spec.note or None,
        "lastFireTime": rfc3339(state.last_fire_ms),
        "lastDueTime": rfc3339(state.last_due_ms),
        "lastExecution": state.running_id,
        "nextFireTime": rfc3339(view.next_fire_at_ms),
        "nextDueTime": rfc3339(view.next_due_ms),
        "started": state.started,
        "skipped": state.skipped,
        "missed": state.missed,
        "failed": state.failed,
        "recentFires": fires,
    }


class Api(Protocol):
    async def create(self, resource: type[Any], body: dict[str, JSON]) -> dict[str, JSON] | None: ...

    async def get(self, resource: type[Any], namespace: str, name: str) -> dict[str, JSON] | None: ...

    async def patch_status(self, ref: ObjectRef, status: dict[str, JSON]) -> str | None: ...


class EngineReads(Protocol):
    async def state_of(self, execution_id: str) -> Any: ...

    @property
    def split(self) -> bool: ...

    async def shard_of_execution(self, execution_id: str) -> int | None: ...


@dataclass
class _Known:
    ref: ObjectRef
    written: dict[str, JSON] = field(default_factory=dict)
    dirty: bool = False
    task: asyncio.Task[None] | None = None


class ScheduleObjects:
    """Creates the Execution object of each execution a known Schedule starts, and writes its status.

    It hears of fires from the schedule service's listener; `ensure` (the reconciler's, on create
    and resume) creates the objects a crash left out, for the fires the service still remembers.
    """

    def __init__(
        self,
        schedules: ScheduleService,
        engine: EngineReads,
        api: Api,
        *,
        bucket: TokenBucket,
        clock: Clock,
        min_interval_s: float = 1.0,
    ) -> None:
        self.schedules = schedules
        self.engine = engine
        self.api = api
        self.bucket = bucket
        self.clock = clock
        self.min_interval_s = min_interval_s
        self._known: dict[str, _Known] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        schedules.add_listener(self.on_written)

    def register(self, key: str, ref: ObjectRef, *, status: Mapping[str, JSON]) -> None:
        """Project schedule `key` onto the Schedule object `ref`; `status`: what the object shows now."""
        known = self._known.get(key)
        if known is None or known.ref.uid != ref.uid:
            self._known[key] = _Known(ref, written=dict(status))

    def forget(self, key: str) -> None:
        known = self._known.pop(key, None)
        if known is not None and known.task is not None:
            known.task.cancel()

    def on_written(self, view: ScheduleView) -> None:
        known = self._known.get(view.key)
        if known is None:
            return  # no object (yet): the reconciler's `ensure` catches up on create or resume
        known.dirty = True
        if known.task is None or known.task.done():
            known.task = asyncio.create_task(self._follow(view.key, known), name=f"schedule {view.key}")

    async def ensure(self, key: str) -> None:
        """Create the objects the service's latest fires lack (after a crash), and write the status."""
        known = self._known.get(key)
        view = await self.schedules.get(key)
        if known is None or view is None:
            return
        await self._sync(known, view, look_first=True)

    async def idle(self) -> None:
        """Return once every write started so far has finished (for tests)."""
        while tasks := [k.task for k in self._known.values() if k.task is not None and not k.task.done()]:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        tasks = [k.task for k in self._known.values() if k.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, key: str, known: _Known) -> None:
        while known.dirty and self._known.get(key) is known:
            known.dirty = False
            try:
                view = await self.schedules.get(key)
                if view is None:
                    return
                await self._sync(known, view, look_first=False)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the objects or status of schedule %s were not written; trying again", key)
                known.dirty = True
            await self.clock.sleep(self.min_interval_s)  # later fires coalesce into the next write

    async def _sync(self, known: _Known, view: ScheduleView, *, look_first: bool) -> None:
        for fire in view.state.recent:
            if fire.outcome in _STARTED and fire.execution_id is not None and fire.execution_id not in self._seen:
                await self._create(known.ref, view.key, fire.execution_id, look_first=look_first)
        status = project_schedule(view, schedule_name=known.ref.name)
        changed = {k: v for k, v in status.items() if known.written.get(k) != v}
        if changed:
            await self.bucket.take()
            await self.api.patch_status(known.ref, changed)
            known.written.update(status)

    async def _create(self, schedule: ObjectRef, key: str, engine_id: str, *, look_first: bool) -> None:
        name = scheduled_object_name(schedule.name, key, engine_id)
        if look_first and await self.api.get(Execution, schedule.namespace, name) is not None:
            self._remember(engine_id)
            return
        try:
            state = await self.engine.state_of(engine_id)
        except ExecutionNotFound:
            self._remember(engine_id)  # the start was refused: there is nothing to view
            return
        workflow = WorkflowKey.parse(state.workflow)
        if workflow.namespace != schedule.namespace:
            log.warning("scheduled execution %s runs in namespace %r, not %r", engine_id, workflow.namespace, schedule)
            self._remember(engine_id)
            return
        body = schedule_execution_body(
            schedule, key=key, engine_id=engine_id, workflow=workflow.name, input=state.input
        )
        await stamp_shard(self.engine, body, engine_id)
        await self.bucket.take()
        if await self.api.create(Execution, body) is None:
            existing = await self.api.get(Execution, schedule.namespace, name)
            annotations = ((existing or {}).get("metadata") or {}).get("annotations") or {}
            if annotations.get(CHILD_ANNOTATION) != engine_id:
                log.warning(
                    "execution %s of %r has no object: the name %s is taken by another", engine_id, schedule, name
                )
        self._remember(engine_id)

    def _remember(self, engine_id: str) -> None:
        self._seen[engine_id] = None
        while len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)
