"""The reconciler's test world, shared by its tests (Workflows, Executions, Approvals, Signals, children).

A real engine over a real SQLite store in a temp dir; a fake Kubernetes API that serves
Workflow and Execution bodies from a dict and records every status patch and Event; a fake
status writer that records what it was told to track and forget.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine import events as ev
from cerebelum_operator.kube.approvers import APPROVER, Stamp, Unreachable
from cerebelum_operator.kube.client import ObjectRef
from cerebelum_operator.kube.reconciler import ObjectView, Outcome, Reconciler
from cerebelum_operator.runtime import Database, EngineService, FakeClock
from cerebelum_operator.store import open_store

NS = "team-a"
NOW_MS = 1_700_000_000_000

SIMPLE = {"timeline": ["fetch", "store"]}
APPROVAL_AFTER_FIRST = {"timeline": ["prepare", "go", "finish"], "steps": {"go": {"approval": {}}}}
TYPED_INPUT = {
    "timeline": ["fetch"],
    "input": {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]},
}
UNKNOWN_STEP = {"timeline": ["fetch"], "steps": {"ghost": {"timeout": "1m"}}}
UNKNOWN_GOTO = {"timeline": ["fetch", "store"], "branch": {"fetch": [{"when": "true", "goto": "nowhere"}]}}


# -- fakes ---------------------------------------------------------------------------------


@dataclass
class Patch:
    ref: ObjectRef
    status: dict[str, Any]


@dataclass
class PostedEvent:
    ref: ObjectRef
    type_: str
    reason: str
    note: str
    action: str


@dataclass
class FakeApi:
    """Serves bodies keyed by (kind, namespace, name); records patches and Events."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    patches: list[Patch] = field(default_factory=list)
    events: list[PostedEvent] = field(default_factory=list)
    gets: list[tuple[str, str, str]] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)

    def put(self, kind: str, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        self.objects[(kind, meta["namespace"], meta["name"])] = body

    async def get(self, resource: type[Any], namespace: str, name: str) -> dict[str, Any] | None:
        kind = resource._api_info.resource.kind
        self.gets.append((kind, namespace, name))
        body = self.objects.get((kind, namespace, name))
        return copy.deepcopy(body) if body is not None else None

    async def create(self, resource: type[Any], body: dict[str, Any]) -> dict[str, Any] | None:
        """Like the API server: None when the name is taken; a uid given to what it creates."""
        kind = resource._api_info.resource.kind
        meta = body["metadata"]
        if (kind, meta["namespace"], meta["name"]) in self.objects:
            return None
        created = copy.deepcopy(body)
        created["metadata"]["uid"] = f"uid-{meta['name']}"
        self.put(kind, created)
        self.created.append(copy.deepcopy(created))
        return copy.deepcopy(created)

    async def patch_status(self, ref: ObjectRef, status: dict[str, Any]) -> None:
        self.patches.append(Patch(ref, copy.deepcopy(status)))

    async def post_event(self, ref: ObjectRef, *, type_: str, reason: str, note: str, action: str) -> None:
        self.events.append(PostedEvent(ref, type_, reason, note, action))


class FakeBucket:
    def __init__(self) -> None:
        self.taken = 0

    async def take(self) -> None:
        self.taken += 1


class FakeWriter:
    def __init__(self) -> None:
        self.refs: dict[str, ObjectRef] = {}
        self.parents: dict[str, str | None] = {}
        self.track_calls: list[str] = []
        self.forgotten: list[str] = []
        self.marked: list[str] = []
        self.expected: set[str] = set()
        self.bucket = FakeBucket()

    def track(
        self,
        execution_id: str,
        ref: ObjectRef,
        *,
        status: dict[str, Any] | None,
        generation: int | None,
        parent_name: str | None = None,
        just_created: bool = False,
    ) -> None:
        self.track_calls.append(execution_id)
        self.refs.setdefault(execution_id, ref)
        self.parents[execution_id] = parent_name
        self.mark(execution_id)

    def expect(self, execution_id: str) -> None:
        self.expected.add(execution_id)

    def unexpect(self, execution_id: str) -> None:
        self.expected.discard(execution_id)

    def ref_of(self, execution_id: str) -> ObjectRef | None:
        return self.refs.get(execution_id)

    def tracked(self, execution_id: str) -> bool:
        return execution_id in self.refs

    def forget(self, execution_id: str) -> None:
        self.refs.pop(execution_id, None)
        self.forgotten.append(execution_id)

    def mark(self, execution_id: str) -> None:
        self.marked.append(execution_id)


@dataclass
class FakeApprovers:
    """The approver check: verified (the default), unverifiable, unreachable, or trusting claims."""

    answer: str | None = None
    trusts_claims: bool = False
    unreachable: bool = False
    asked: int = 0
    stamps: list[str] = field(default_factory=list)

    async def problem(self, stamp: Stamp = APPROVER) -> str | None:
        self.asked += 1
        self.stamps.append(stamp.field)
        if self.unreachable:
            raise Unreachable("could not read the admission policies: connection refused")
        return self.answer


@dataclass
class World:
    engine: EngineService
    db: Database
    api: FakeApi
    writer: FakeWriter
    clock: FakeClock
    reconciler: Reconciler
    approvers: FakeApprovers

    async def history(self, execution_id: str) -> list[ev.Event]:
        records = await self.db.run(self.db.store.load_history, execution_id)
        return [r.event for r in records]

    async def execution_row(self, execution_id: str) -> Any:
        return await self.db.run(self.db.store.get_execution, execution_id)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    db = Database(store)
    clock = FakeClock(start_ms=NOW_MS)
    engine = EngineService(db, clock=clock)
    api = FakeApi()
    writer = FakeWriter()
    approvers = FakeApprovers()
    reconciler = Reconciler(engine, api, writer, clock=clock, approvers=approvers)  # type: ignore[arg-type]
    try:
        yield World(engine, db, api, writer, clock, reconciler, approvers)
    finally:
        db.close()


# -- bodies --------------------------------------------------------------------------------


def body(
    name: str,
    spec: dict[str, Any],
    *,
    uid: str | None = None,
    generation: int = 1,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": NS,
            "name": name,
            "uid": uid or f"uid-{name}",
            "generation": generation,
            "finalizers": [],
        },
        "spec": copy.deepcopy(spec),
        "status": copy.deepcopy(status or {}),
    }


def add_workflow(world: World, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    workflow = body(name, spec)
    world.api.put("Workflow", workflow)
    return workflow


def add_execution(
    world: World, name: str, workflow: str, *, input: Any = None, uid: str | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"workflow": workflow}
    if input is not None:
        spec["input"] = input
    execution = body(name, spec, uid=uid or f"uid-{name}")
    world.api.put("Execution", execution)
    return execution


def with_status(original: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    """The body as the API server holds it after the handler's status patch was applied."""
    updated = copy.deepcopy(original)
    updated["status"] = {**updated.get("status", {}), **copy.deepcopy(outcome.status)}
    return updated


def conditions_by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions", [])}


async def started_execution(world: World, name: str, workflow: str, spec: dict[str, Any], **kw: Any) -> str:
    add_workflow(world, workflow, spec)
    execution = add_execution(world, name, workflow, **kw)
    await world.reconciler.execution_seen(ObjectView.of(execution), first_attempt=True)
    return str(execution["metadata"]["uid"])


async def complete_step(world: World, execution_id: str, step: str, output: Any) -> None:
    """What a worker does through the dispatcher: start the step's task, then report success."""
    state = await world.engine.state_of(execution_id)
    token = state.steps[step].token
    assert token is not None
    await world.engine.handle(execution_id, cmd.TaskStarted(token, "worker-1"))
    await world.engine.handle(execution_id, cmd.TaskCompleted(token, cmd.OutcomeSuccess(output)))


async def waiting_for_approval(world: World) -> str:
    """An execution whose first step finished and whose step `go` now waits for an Approval."""
    execution_id = await started_execution(world, "deploy-1", "deploy", APPROVAL_AFTER_FIRST, input={"env": "prod"})
    await complete_step(world, execution_id, "prepare", {"ready": True})
    state = await world.engine.state_of(execution_id)
    assert state.display_phase() == ExecutionPhase.WAITING_FOR_APPROVAL
    assert "go" in state.approvals
    return execution_id


def approval_body(name: str, spec: dict[str, Any], *, status: dict[str, Any] | None = None) -> ObjectView:
    return ObjectView.of(body(name, spec, status=status))
