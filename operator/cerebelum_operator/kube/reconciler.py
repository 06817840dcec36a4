"""What the operator does for each custom resource; kopf-free so it reads (and tests) plainly.

Every method is idempotent: kopf may call it again after a crash, on resume, or on a retry,
and the engine's own idempotency (an execution id is the Execution's uid) absorbs the repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..api import DEFAULT_MAX_PAYLOAD_BYTES
from ..engine import CommandRejected
from ..engine import commands as cmd
from ..engine import events as ev
from ..model import InputInvalid, LabelsInvalid, WorkflowInvalid
from ..model.labels import MAX_LABEL_VALUE, MAX_LABELS
from ..runtime import (
    Clock,
    EngineService,
    ExecutionConflict,
    ExecutionNotFound,
    ScheduleInvalid,
    ScheduleService,
    WorkflowKey,
)
from ..runtime.schedules import parse_spec
from ..store import ShardNotOwned
from .approvers import ApproverCheck, Unreachable
from .children import CHILD_ANNOTATION, ChildObjects, ChildRefused, owner_of, verify_child
from .client import Execution, KubeApi, ObjectRef, Schedule, Workflow
from .expirer import TTL_ANNOTATION, ExecutionExpirer
from .expiry import EXPIRING_PHASES
from .names import InvalidName, namespace_name, object_name
from .projection import condition
from .rate_limit import TokenBucket
from .schedules import ScheduleObjects, project_schedule, schedule_key, verify_scheduled
from .shard_watch import SHARD_LABEL
from .signals import deliver_signal
from .status_writer import TERMINAL_PHASES, StatusWriter
from .views import ObjectView, Outcome, Retry, json_size, plain, too_large, with_condition
from .watched import WatchedWorkflows

__all__ = [
    "PAUSED_ANNOTATION",
    "ObjectView",
    "Outcome",
    "Reconciler",
    "Retry",
    "json_size",
    "paused",
    "plain",
    "workflow_key",
]

log = logging.getLogger(__name__)

JSON = Any


def workflow_key(namespace: str, name: str) -> str:
    """Workflows live in the store under namespace/name: names are unique only per namespace.

    Both parts are checked as Kubernetes names (`InvalidName` otherwise): the key's prefix is the
    namespace whose workers may take the tasks, so a name holding a '/' must never shift it. The
    key itself is the runtime's `WorkflowKey`, which the dispatcher reads the namespace back from.
    """
    return str(WorkflowKey(namespace_name(namespace), object_name(name, field="workflow name")))


def _spec_problem(invalid: Exception) -> str:
    """A refused Schedule spec, its fields named as in the object (`spec.cron`)."""
    text = str(invalid)
    prefix = "schedule spec is not valid: "
    if text.startswith(prefix):
        text = prefix + "; ".join(
            problem if problem.startswith("spec") else f"spec.{problem}" for problem in text[len(prefix) :].split("; ")
        )
    return text


def _ready_status(view: ObjectView) -> str | None:
    """The recorded Ready condition's status ("True", "False"), or None when there is none."""
    for entry in view.status.get("conditions") or []:
        if isinstance(entry, Mapping) and entry.get("type") == "Ready":
            status = entry.get("status")
            return status if isinstance(status, str) else None
    return None


# Refusals that end an Execution for good (its spec or annotations are immutable in what they say).
# An Execution's pause: the annotation `cerebelum.io/paused: "true"` (the spec is immutable; an
# annotation may change, and `kubectl annotate executions -l ...` pauses many at once). The engine
# records it as a hold of its own source, so this pause and one made with `cerebelum pause`
# (source "user") are lifted each by its own.
PAUSED_ANNOTATION = "cerebelum.io/paused"
_PAUSED = cmd.Pause(f"annotation {PAUSED_ANNOTATION} is true", "", source="Execution")
_RESUMED = cmd.Resume("", source="Execution")


def paused(execution: ObjectView) -> bool:
    return execution.annotations.get(PAUSED_ANNOTATION) == "true"


class Reconciler:
    def __init__(
        self,
        engine: EngineService,
        api: KubeApi,
        writer: StatusWriter,
        *,
        clock: Clock,
        approvers: ApproverCheck,
        writes: TokenBucket | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        schedules: ScheduleService | None = None,
        schedule_status_interval_s: float = 1.0,
        expirer: ExecutionExpirer | None = None,
    ) -> None:
        """`writes`: the API write budget; the status writer's bucket unless one is given to both;
        `schedules`: the engine's schedule service, for Schedule objects (none: they are refused);
        `expirer`: deletes finished Execution objects after their time-to-live (none: kept)."""
        self.engine = engine
        self.api = api
        self.writer = writer
        self.clock = clock
        self.approvers = approvers
        self.writes = writes if writes is not None else writer.bucket
        self.max_payload_bytes = max_payload_bytes
        self.children = ChildObjects(engine, api, writer, bucket=self.writes)
        self.schedules = schedules
        self.schedule_objects = (
            None
            if schedules is None
            else ScheduleObjects(
                schedules, engine, api, bucket=self.writes, clock=clock, min_interval_s=schedule_status_interval_s
            )
        )
        self.expirer = expirer
        self._stored_specs: dict[str, dict[str, JSON]] = {}
        # Fed by the Workflow watch (`handlers.build_registry`): an Execution's start reads its spec here.
        self.workflows = WatchedWorkflows()

    # -- Workflow ------------------------------------------------------------------------

    async def workflow_changed(self, workflow: ObjectView) -> Outcome:
        """Compile the spec; keep it in the store (executions snapshot it) and say Ready or Invalid.

        A generation already observed is compiled again (on the operator's resume, after an
        upgrade), but written only when its verdict changed: a Workflow Ready under an older
        release whose rules this one refuses turns Invalid, naming the place, and the reverse.
        """
        recorded = _ready_status(workflow) if workflow.status.get("observedGeneration") == workflow.generation else None
        now = self.clock.now_ms()
        try:
            definition = self.engine.definition_for(workflow.spec)
        except WorkflowInvalid as invalid:
            if recorded == "False":
                return Outcome()
            ready = condition("Ready", "False", "Invalid", str(invalid), now_ms=now, generation=workflow.generation)
            return Outcome(
                status=self._conditions(workflow, ready),
                event=("Warning", "Invalid", str(invalid)),
            )
        if recorded == "True":
            return Outcome()
        await self._store_workflow(workflow_key(workflow.namespace, workflow.name), workflow.spec)
        message = f"{len(definition.steps)} steps compiled"
        ready = condition("Ready", "True", "Compiled", message, now_ms=now, generation=workflow.generation)
        status = self._conditions(workflow, ready)
        status["steps"] = len(definition.steps)
        return Outcome(status=status)

    async def _workflow_spec(self, namespace: str, name: str) -> dict[str, JSON] | None:
        """The Workflow's spec as the watch last delivered it; read from the API server only when the
        watch has not delivered it (yet); None when there is no such Workflow (`kube/watched.py`)."""
        spec = self.workflows.spec_of(namespace, name)
        if spec is not None:
            return spec
        workflow = await self.api.get(Workflow, namespace, name)
        return None if workflow is None else plain(workflow.get("spec") or {})

    async def _store_workflow(self, key: str, spec: dict[str, JSON]) -> None:
        """Write the spec to the store only when it changed: executions start by the hundred."""
        if self._stored_specs.get(key) == spec:
            return
        await self.engine.put_workflow(key, spec)
        self._stored_specs[key] = spec

    @staticmethod
    def _conditions(view: ObjectView, update: dict[str, JSON]) -> dict[str, JSON]:
        return with_condition(view, update)

    # -- Execution -----------------------------------------------------------------------

    async def execution_seen(self, execution: ObjectView, *, first_attempt: bool) -> Outcome:
        """Start the execution (once, by uid) or, if it already runs, project it again.

        An object with the child annotation is the view of a child the engine already runs: it is
        projected, never started, once `children.verify_child` accepts it. A finished object is
        `execution_finished`'s business.
        """
        return await self._execution_seen(execution, first_attempt=first_attempt)

    async def execution_finished(self, execution: ObjectView) -> dict[str, str | None]:
        """An Execution seen finished and not labelled so: hand it to the expirer; the annotations the
        object gets with its `cerebelum.io/finished` label (`handlers.execution_finished`).

        One store row read, for the ttlAfterFinished its run started with (none for a refusal,
        which has no history); a run the store no longer has (its retention period removed it,
        past every time-to-live the cap allows) means the object goes at once.
        """
        run_id = execution.status.get("runId")
        declared: str | None = None
        if isinstance(run_id, str) and run_id:
            row = await self.engine.get_execution(run_id)
            if row is None:
                self._history_gone(execution)
                return {}
            value = row.spec.get("ttlAfterFinished")
            declared = value if isinstance(value, str) else None
        if self.expirer is not None:
            self.expirer.notice(execution.ref("Execution"), execution.status, run_id=None, declared=declared)
        return {TTL_ANNOTATION: declared}

    async def _execution_seen(self, execution: ObjectView, *, first_attempt: bool) -> Outcome:
        if execution.status.get("phase") in EXPIRING_PHASES:
            # Finished (refusals included: they are final, the spec is immutable), but not labelled
            # so: finished before an upgrade, or the operator stopped before kopf could label it. Its
            # status is final: nothing is read or replayed; `execution_finished` labels it.
            return Outcome()
        if CHILD_ANNOTATION in execution.annotations:
            return await self._child_seen(execution)
        existing = await self.engine.get_execution(execution.uid)
        if existing is not None:
            if paused(execution) or execution.status.get("phase") == "Paused":
                await self.execution_paused(execution)  # the annotation changed while no operator watched
            self._track(execution, execution.uid)
            await self.children.ensure_children(execution.ref("Execution"), execution.uid)
            return Outcome()
        now = self.clock.now_ms()
        try:
            # Resolved in the Execution's own namespace only, and only once it is a name, not a path.
            workflow_name = object_name(execution.spec.get("workflow"), field="spec.workflow")
        except InvalidName as invalid:
            return self._refuse(execution, "InvalidReference", str(invalid), now)
        too_large = self._too_large("spec.input", execution.spec.get("input"))
        if too_large is not None:
            return self._refuse(execution, "InputTooLarge", too_large, now)
        spec = await self._workflow_spec(execution.namespace, workflow_name)
        if spec is None:
            message = f"workflow {workflow_name!r} not found in namespace {execution.namespace}: apply it first"
            if first_attempt:
                await self.writes.take()
                await self.api.patch_status(
                    execution.ref("Execution"),
                    self._accepted(execution, "False", "WorkflowNotFound", message, now, phase="Pending"),
                )
            raise Retry(message, delay_s=5.0)
        try:
            self.engine.definition_for(spec)
        except WorkflowInvalid as invalid:
            return self._refuse(execution, "WorkflowInvalid", f"workflow {workflow_name!r} is invalid: {invalid}", now)
        await self._store_workflow(workflow_key(execution.namespace, workflow_name), spec)
        if not self.engine.owns_id(execution.uid):
            return Outcome()  # its shard moved to another replica meanwhile, which adopts it
        self.writer.expect(execution.uid)  # its status's recentEvents from the start's own events
        try:
            await self.engine.start(
                workflow_key(execution.namespace, workflow_name),
                execution.spec.get("input"),
                execution_id=execution.uid,
                hold=_PAUSED if paused(execution) else None,
                # The object's labels, as they are at its start: what listings filter the execution by.
                labels=_with_name(execution),
                pinned=True,  # in its uid's shard, where every replica's watch filter routes the object
            )
        except ShardNotOwned:
            return Outcome()  # its shard moved while it started: nothing was written, its new owner starts it
        except LabelsInvalid as invalid:  # the API server's label syntax is ours: only too many can fail
            return self._refuse(execution, "LabelsInvalid", f"metadata.labels: {invalid}", now)
        except InputInvalid as invalid:
            return self._refuse(execution, "InputInvalid", str(invalid), now)
        except ExecutionConflict:
            # Its id ran before: the execution finished (before its status said so) and the store's
            # retention period has removed its history since. Never started again; the object goes.
            return self._history_gone(execution)
        else:
            self._track(execution, execution.uid)
        finally:
            self.writer.unexpect(execution.uid)
        # No `Started` Event: the status says so (one API write per Execution saved; docs/architecture.md).
        return Outcome()

    async def execution_paused(self, execution: ObjectView) -> None:
        """Hold the execution while it has the pause annotation, and let it go when it has it no more."""
        if execution.status.get("phase") in TERMINAL_PHASES:
            return
        command: cmd.Command = _PAUSED if paused(execution) else _RESUMED
        try:
            await self.engine.handle(execution.uid, command)
        except (ExecutionNotFound, CommandRejected):
            return  # not started yet (the start takes the annotation), or it ended meanwhile

    def _history_gone(self, execution: ObjectView) -> Outcome:
        """The object of an execution the store's retention period removed: past every time-to-live
        the cap allows, so it is deleted at once (without an expirer, it is left as it is)."""
        log.info("%s/%s: its history was removed from the store", execution.namespace, execution.name)
        if self.expirer is not None:
            self.expirer.expire_now(execution.ref("Execution"))
        return Outcome()

    def _too_large(self, field: str, value: JSON) -> str | None:
        return too_large(field, value, self.max_payload_bytes)

    def _track(self, execution: ObjectView, engine_id: str, *, parent_name: str | None = None) -> None:
        self.writer.track(
            engine_id,
            execution.ref("Execution"),
            status=execution.status,
            generation=execution.generation,
            parent_name=parent_name,
            just_created=not execution.status,
        )

    async def _child_seen(self, execution: ObjectView) -> Outcome:
        """Project the child execution the object's annotation names, once it is verified."""
        now = self.clock.now_ms()
        try:
            engine_id = await self.engine_id_of(execution)
        except ChildRefused as refused:
            return self._refuse(execution, "InvalidChild", str(refused), now)
        unlabelled = self.engine.split and SHARD_LABEL not in execution.labels
        if unlabelled and not await self.engine.owns_execution(engine_id):
            # Created before the replicas shared the shards (no label): routed here by its uid, but
            # its execution is another replica's. Labelled with its shard, it reaches that one.
            shard = await self.engine.shard_of_execution(engine_id)
            await self.writes.take()
            await self.api.mark(execution.ref("Execution"), labels={SHARD_LABEL: str(shard)})
            return Outcome()
        owner = owner_of(execution.owners)
        self._track(execution, engine_id, parent_name=owner.name if owner is not None else None)
        await self.children.ensure_children(execution.ref("Execution"), engine_id)
        # No `Started` Event: its owner reference and status (`parent`) say who started it.
        return Outcome()

    async def engine_id_of(self, execution: ObjectView) -> str:
        """The engine execution the object views: its uid, or for a child's object the annotated id,
        verified (`ChildRefused` otherwise)."""
        claimed = execution.annotations.get(CHILD_ANNOTATION)
        if claimed is None:
            return execution.uid
        scheduler = owner_of(execution.owners, kind="Schedule")
        if scheduler is not None:
            try:
                scheduler_name = object_name(scheduler.name, field="ownerReferences[].name")
            except InvalidName as invalid:
                raise ChildRefused(str(invalid)) from None
            found = await self.api.get(Schedule, execution.namespace, scheduler_name)
            return await verify_scheduled(
                self.engine,
                namespace=execution.namespace,
                claimed=claimed,
                owner=scheduler,
                owner_found=found is not None and str(found["metadata"].get("uid")) == scheduler.uid,
            )
        owner = owner_of(execution.owners)
        owner_engine_id = None
        if owner is not None:
            try:
                owner_name = object_name(owner.name, field="ownerReferences[].name")
            except InvalidName as invalid:
                raise ChildRefused(str(invalid)) from None
            found = await self.api.get(Execution, execution.namespace, owner_name)
            if found is not None and str(found["metadata"].get("uid")) == owner.uid:
                annotations = found["metadata"].get("annotations") or {}
                owner_engine_id = str(annotations.get(CHILD_ANNOTATION) or owner.uid)
        return await verify_child(
            self.engine,
            namespace=execution.namespace,
            claimed=claimed,
            owner=owner,
            owner_engine_id=owner_engine_id,
        )

    def _refuse(self, execution: ObjectView, reason: str, message: str, now: int) -> Outcome:
        status = self._accepted(execution, "False", reason, message, now, phase="Failed")
        status["error"] = message[:1024]
        return Outcome(status=status, event=("Warning", reason, message))

    def _accepted(
        self, execution: ObjectView, value: str, reason: str, message: str, now: int, *, phase: str
    ) -> dict[str, JSON]:
        update = condition("Accepted", value, reason, message, now_ms=now, generation=execution.generation)
        return {"phase": phase, **self._conditions(execution, update)}

    async def execution_deleted(self, execution: ObjectView) -> None:
        """Cancel work in flight (a chain's latest run); kopf then drops the finalizer and the delete completes.

        A child's object cancels its child only once verified: deleting an object that merely
        claims an execution cancels nothing.
        """
        try:
            engine_id = await self.engine_id_of(execution)
        except ChildRefused as refused:
            log.info("deleting %s/%s cancels nothing: %s", execution.namespace, execution.name, refused)
            return
        try:
            run = await self.engine.latest_run(engine_id)
            state = await self.engine.state_of(run)
        except ExecutionNotFound:
            state = None
        if state is not None and not state.phase.terminal:
            # Forced: with the object gone nobody could ask again, so a code workflow stops at once.
            await self.engine.handle(run, cmd.Cancel(reason=f"Execution {execution.name} was deleted", force=True))
            where = f"{execution.namespace}/{execution.name}"
            log.info("cancelled %s: its Execution %s was deleted", run, where)
        self.writer.forget(engine_id)

    # -- Schedule ------------------------------------------------------------------------

    async def schedule_changed(self, schedule: ObjectView, *, first_attempt: bool) -> Outcome:
        """Put the Schedule into the engine's schedule service (an unchanged spec changes nothing).

        Its Workflow is stored first (a fire starts it from the store); an invalid spec is
        refused with a Ready condition naming the field, and the engine keeps what it had.
        """
        now = self.clock.now_ms()
        if self.schedules is None or self.schedule_objects is None:
            return self._schedule_ready(schedule, "False", "Unsupported", "this operator runs no schedule service", now)
        try:
            key = schedule_key(schedule.namespace, schedule.name)
            workflow_name = object_name(schedule.spec.get("workflow"), field="spec.workflow")
            spec = parse_spec({**schedule.spec, "workflow": workflow_key(schedule.namespace, workflow_name)})
        except (InvalidName, ScheduleInvalid, ValueError) as invalid:
            return self._schedule_ready(schedule, "False", "InvalidSpec", _spec_problem(invalid), now, warn=True)
        workflow_spec = await self._workflow_spec(schedule.namespace, workflow_name)
        if workflow_spec is None:
            message = f"workflow {workflow_name!r} not found in namespace {schedule.namespace}: apply it first"
            if first_attempt:
                await self.writes.take()
                await self.api.patch_status(
                    schedule.ref("Schedule"),
                    self._schedule_ready(schedule, "False", "WorkflowNotFound", message, now).status,
                )
            raise Retry(message, delay_s=5.0)
        problem: tuple[str, str] | None = None  # (reason, message)
        try:
            self.engine.definition_for(workflow_spec)
        except WorkflowInvalid as invalid:
            problem = ("WorkflowInvalid", f"workflow {workflow_name!r} is invalid: {invalid}")
        if problem is not None:
            reason, message = problem
            if first_attempt:
                await self.writes.take()
                await self.api.patch_status(
                    schedule.ref("Schedule"), self._schedule_ready(schedule, "False", reason, message, now).status
                )
            raise Retry(message, delay_s=30.0)
        await self._store_workflow(spec.workflow, workflow_spec)
        self.schedule_objects.register(key, schedule.ref("Schedule"), status=schedule.status)
        view = await self.schedules.put(key, spec)
        await self.schedule_objects.ensure(key)
        message = (
            "paused: " + (view.spec.note or "no note")
            if view.spec.paused
            else f"fires {project_schedule(view, schedule_name=schedule.name)['schedule']}"
        )
        outcome = self._schedule_ready(schedule, "True", "Scheduled", message, now)
        outcome.status.update(project_schedule(view, schedule_name=schedule.name))
        return outcome

    async def schedule_deleted(self, schedule: ObjectView) -> None:
        """Stop firing; the Executions it started go on (Kubernetes deletes them with it, which cancels them)."""
        if self.schedules is None or self.schedule_objects is None:
            return
        key = schedule_key(schedule.namespace, schedule.name)
        self.schedule_objects.forget(key)
        if await self.schedules.delete(key):
            log.info("schedule %s deleted: it fires no more", key)

    def _schedule_ready(
        self, schedule: ObjectView, value: str, reason: str, message: str, now: int, *, warn: bool = False
    ) -> Outcome:
        update = condition("Ready", value, reason, message, now_ms=now, generation=schedule.generation)
        status = self._conditions(schedule, update)
        previous = {c.get("type"): c for c in schedule.status.get("conditions") or [] if isinstance(c, Mapping)}
        changed = (previous.get("Ready") or {}).get("message") != message
        event = ("Warning", reason, message) if warn and changed else None
        return Outcome(status=status, event=event)

    # -- Approval ------------------------------------------------------------------------

    async def approval_created(self, approval: ObjectView) -> Outcome:
        """Approve or reject the named step; the approver comes from admission, never from the operator."""
        if approval.status.get("phase"):
            return Outcome()
        spec = approval.spec
        step = str(spec.get("step", ""))
        claimed = spec.get("approver")
        approver = str(claimed or "unknown (no admission policy stamped the approver)")
        try:
            # Resolved in the Approval's own namespace only, and only once it is a name, not a path.
            execution_name = object_name(spec.get("execution"), field="spec.execution")
        except InvalidName as invalid:
            return self._approval(approval, "Refused", str(invalid), approver)
        try:
            unverifiable = await self.approvers.problem()
        except Unreachable as error:
            raise Retry(str(error), delay_s=5.0) from error
        if unverifiable is None and not claimed and not self.approvers.trusts_claims:
            # The policy is installed now, but did not stamp this one (created before it was).
            unverifiable = (
                "the approver cannot be verified: spec.approver is empty, so the admission policy did not "
                "stamp this Approval (created before the policy was installed?): create the Approval again"
            )
        if unverifiable is not None:
            return self._approval(approval, "Refused", unverifiable, approver)
        too_large = self._too_large("spec.payload", spec.get("payload"))
        if too_large is not None:
            return self._approval(approval, "Refused", too_large, approver)
        execution = await self.api.get(Execution, approval.namespace, execution_name)
        if execution is None:
            return self._approval(approval, "Refused", f"execution {execution_name!r} not found", approver)
        execution_id = str(execution["metadata"]["uid"])
        command: cmd.Command
        if spec.get("decision", "Approve") == "Reject":
            command = cmd.Reject(
                step=step, approver=approver, reason=str(spec.get("reason") or ""), request_id=approval.uid
            )
        else:
            command = cmd.Approve(step=step, approver=approver, payload=spec.get("payload"), request_id=approval.uid)
        try:
            await self.engine.handle(execution_id, command)
        except ExecutionNotFound:
            return self._approval(approval, "Refused", f"execution {execution_name!r} has not started", approver)
        except CommandRejected as rejected:
            verb = "rejected" if isinstance(command, cmd.Reject) else "approved"
            if await self._already_decided(execution_id, command):
                # The operator died after the engine recorded this decision and before the status
                # said so; kopf delivered the Approval again. It was applied, not refused.
                return self._approval(
                    approval, "Applied", f"step {step} of {execution_name} {verb} by {approver}", approver
                )
            return self._approval(approval, "Refused", str(rejected), approver)
        verb = "rejected" if isinstance(command, cmd.Reject) else "approved"
        message = f"step {step} of {execution_name} {verb} by {approver}"
        ref = ObjectRef(kind="Execution", namespace=approval.namespace, name=execution_name, uid=execution_id)
        await self.writes.take()
        await self.api.post_event(
            ref,
            type_="Normal",
            reason="Approved" if verb == "approved" else "Rejected",
            note=message,
            action="Approve" if verb == "approved" else "Reject",
        )
        return self._approval(approval, "Applied", message, approver)

    async def _already_decided(self, execution_id: str, command: cmd.Approve | cmd.Reject) -> bool:
        """Whether the history holds this very decision: the same Approval object's, by its uid."""
        if command.request_id is None:
            return False
        history = await self.engine.load_history(execution_id)
        return any(
            isinstance(recorded.event, ev.ApprovalGranted | ev.ApprovalRejected)
            and recorded.event.request_id == command.request_id
            for recorded in history
        )

    def _approval(self, approval: ObjectView, phase: str, message: str, approver: str) -> Outcome:
        now = self.clock.now_ms()
        applied = condition(
            "Applied",
            "True" if phase == "Applied" else "False",
            phase,
            message,
            now_ms=now,
            generation=approval.generation,
        )
        status = {"phase": phase, "message": message, "approver": approver, **self._conditions(approval, applied)}
        event = None if phase == "Applied" else ("Warning", "Refused", message)
        return Outcome(status=status, event=event)

    # -- Signal --------------------------------------------------------------------------

    async def signal_created(self, signal: ObjectView) -> Outcome:
        """Deliver the Signal once to the named Execution's latest run (`kube/signals.py`)."""
        return await deliver_signal(self, signal)


NAME_LABEL = "cerebelum.io/execution"


def _with_name(execution: ObjectView) -> dict[str, str]:
    """The object's labels, plus its name under `cerebelum.io/execution` when that fits a label.

    The engine knows an Execution by its uid; the name is what people search the web UI for. A
    name longer than a label value (63), or an object already at the label limit, goes without.
    """
    labels = dict(execution.labels)
    if len(execution.name) <= MAX_LABEL_VALUE and len(labels) < MAX_LABELS and NAME_LABEL not in labels:
        labels[NAME_LABEL] = execution.name
    return labels
