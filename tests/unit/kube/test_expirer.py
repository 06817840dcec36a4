"""The expirer's glue on a fake clock and a fake API (issue 19): what is deleted, in which order, and
what is left alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from cerebelum_operator.kube.children import PARENT_LABEL
from cerebelum_operator.kube.client import ObjectRef
from cerebelum_operator.kube.expirer import FINISHED_LABEL, TTL_ANNOTATION, ExecutionExpirer
from cerebelum_operator.kube.expiry import TtlPolicy
from cerebelum_operator.kube.projection import rfc3339
from cerebelum_operator.kube.rate_limit import TokenBucket
from cerebelum_operator.runtime import EngineService, FakeClock

NS = "team-a"


@dataclass
class Row:
    spec: dict[str, Any]


@dataclass
class FakeEngine:
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    failing: int = 0

    async def get_execution(self, execution_id: str) -> Row | None:
        if self.failing:
            self.failing -= 1
            raise ConnectionError("the store is away")
        spec = self.specs.get(execution_id)
        return None if spec is None else Row(spec)


@dataclass
class FakeApi:
    """Objects by (kind, name) -> (uid, what it refers to: an Approval's or Signal's spec.execution,
    a child Execution's parent uid); records deletes in order."""

    objects: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    failing: int = 0
    # The Execution objects the sweep lists (labelled finished), and the marks written, in order.
    labelled: list[dict[str, Any]] = field(default_factory=list)
    marks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lists: int = 0

    async def list_labelled(
        self, resource: type[Any], namespaces: tuple[str, ...], *, labels: dict[str, Any], page: int = 500
    ) -> AsyncIterator[dict[str, Any]]:
        assert labels == {FINISHED_LABEL: "true"}
        self.lists += 1
        for obj in list(self.labelled):
            yield obj

    async def mark(
        self,
        ref: ObjectRef,
        *,
        labels: dict[str, str | None] | None = None,
        annotations: dict[str, str | None] | None = None,
        attempts: int = 5,
    ) -> bool:
        self.marks.append((ref.name, {"labels": labels, "annotations": annotations}))
        return True

    async def get(self, resource: type[Any], namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((resource._api_info.resource.kind, name))
        return None if found is None else {"metadata": {"name": name, "uid": found[0]}}

    async def list_selected(
        self,
        resource: type[Any],
        namespace: str,
        *,
        fields: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[tuple[str, str]]:
        kind = resource._api_info.resource.kind
        if labels is not None:  # children by their parent's uid
            parent = labels[PARENT_LABEL]
            return [(name, uid) for (k, name), (uid, ref) in self.objects.items() if k == kind and ref == parent]
        assert fields is not None
        execution = fields["spec.execution"]
        return [(name, uid) for (k, name), (uid, ref) in self.objects.items() if k == kind and ref == execution]

    async def delete(self, resource: type[Any], namespace: str, name: str, *, uid: str) -> bool:
        if self.failing:
            self.failing -= 1
            raise ConnectionError("the API server is away")
        kind = resource._api_info.resource.kind
        found = self.objects.get((kind, name))
        if found is None or found[0] != uid:
            return False
        del self.objects[(kind, name)]
        self.deleted.append((kind, name))
        return True


def ref(name: str, uid: str | None = None) -> ObjectRef:
    return ObjectRef(kind="Execution", namespace=NS, name=name, uid=uid or f"uid-{name}")


def finished(clock: FakeClock, run_id: str = "") -> dict[str, Any]:
    return {"phase": "Succeeded", "finishedAt": rfc3339(clock.now_ms()), "runId": run_id}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
async def expirer(clock: FakeClock, api: FakeApi, engine: FakeEngine) -> AsyncIterator[ExecutionExpirer]:
    started = ExecutionExpirer(
        cast(EngineService, engine),
        cast(Any, api),
        clock=clock,
        policy=TtlPolicy(default_ms=60_000),
        bucket=TokenBucket(rate=1000, burst=1000, clock=clock),
        retry_s=30,
    )
    await started.start()
    yield started
    await started.stop()


async def settle() -> None:
    """Let the expirer's loop run what a poke or the clock made due."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_finished_object_goes_after_its_workflows_ttl_its_approvals_and_signals_first(
    expirer: ExecutionExpirer, api: FakeApi, engine: FakeEngine, clock: FakeClock
) -> None:
    engine.specs["run-1"] = {"ttlAfterFinished": "10s"}
    api.objects = {
        ("Execution", "order-1"): ("uid-order-1", None),
        ("Approval", "order-1-ok"): ("a1", "order-1"),
        ("Signal", "order-1-ping"): ("s1", "order-1"),
        ("Approval", "other-ok"): ("a2", "other"),
    }
    expirer.notice(ref("order-1"), finished(clock, "run-1"), run_id="run-1")
    await settle()
    await clock.advance(9)
    assert api.deleted == []
    await clock.advance(2)
    await settle()
    assert api.deleted == [("Approval", "order-1-ok"), ("Signal", "order-1-ping"), ("Execution", "order-1")]
    assert set(api.objects) == {("Approval", "other-ok")}


async def test_a_workflow_that_says_nothing_takes_the_default_and_never_is_kept(
    expirer: ExecutionExpirer, api: FakeApi, engine: FakeEngine, clock: FakeClock
) -> None:
    engine.specs.update({"run-d": {}, "run-n": {"ttlAfterFinished": "never"}})
    api.objects = {("Execution", "d"): ("uid-d", None), ("Execution", "n"): ("uid-n", None)}
    expirer.notice(ref("d"), finished(clock), run_id="run-d")
    expirer.notice(ref("n"), finished(clock), run_id="run-n")
    await settle()
    await clock.advance(61)
    await settle()
    assert api.deleted == [("Execution", "d")]
    assert len(expirer.queue) == 0, "an object kept for ever is not even queued"


async def test_a_namesake_made_since_is_not_touched_nor_are_its_approvals(
    expirer: ExecutionExpirer, api: FakeApi, clock: FakeClock
) -> None:
    api.objects = {("Execution", "order-1"): ("new-uid", None), ("Approval", "order-1-ok"): ("a1", "order-1")}
    expirer.notice(ref("order-1", "old-uid"), finished(clock), run_id=None)
    await settle()
    await clock.advance(61)
    await settle()
    assert api.deleted == []


async def test_a_delete_the_api_server_refuses_is_tried_again_later(
    expirer: ExecutionExpirer, api: FakeApi, clock: FakeClock
) -> None:
    api.objects = {("Execution", "order-1"): ("uid-order-1", None)}
    api.failing = 1
    expirer.notice(ref("order-1"), finished(clock), run_id=None)
    await settle()
    await clock.advance(61)
    await settle()
    assert api.deleted == [] and len(expirer.queue) == 1
    await clock.advance(31)
    await settle()
    assert api.deleted == [("Execution", "order-1")]


async def test_an_object_still_running_is_never_queued(expirer: ExecutionExpirer, clock: FakeClock) -> None:
    expirer.notice(ref("busy"), {"phase": "Running", "finishedAt": None}, run_id=None)
    await settle()
    assert expirer.idle


async def test_a_parents_object_waits_for_its_childrens_objects_to_go_first(
    expirer: ExecutionExpirer, api: FakeApi, clock: FakeClock
) -> None:
    api.objects = {("Execution", "parent"): ("uid-parent", None), ("Execution", "parent-child"): ("c1", "uid-parent")}
    expirer.notice(ref("parent"), finished(clock), run_id=None)
    await settle()
    await clock.advance(61)
    await settle()
    assert api.deleted == [], "deleting it would cascade to a child that may run on"
    del api.objects[("Execution", "parent-child")]  # the child's own time-to-live passed
    await clock.advance(31)
    await settle()
    assert api.deleted == [("Execution", "parent")]


async def test_an_object_whose_history_is_gone_from_the_store_is_deleted_at_once(
    expirer: ExecutionExpirer, api: FakeApi
) -> None:
    api.objects = {("Execution", "order-1"): ("uid-order-1", None)}
    expirer.on_finished(ref("order-1"), None)  # what the status writer says when the store lost it
    await settle()
    assert api.deleted == [("Execution", "order-1")]


async def test_a_time_to_live_the_store_could_not_say_is_read_again_later_never_guessed(
    expirer: ExecutionExpirer, api: FakeApi, engine: FakeEngine, clock: FakeClock
) -> None:
    engine.specs["run-1"] = {"ttlAfterFinished": "never"}
    engine.failing = 1
    api.objects = {("Execution", "order-1"): ("uid-order-1", None)}
    expirer.notice(ref("order-1"), finished(clock), run_id="run-1")
    await settle()
    await clock.advance(3600)
    await settle()
    assert api.deleted == [] and len(expirer.queue) == 0, "kept for ever, as its Workflow says"
    assert expirer.idle


async def test_a_time_to_live_already_known_costs_no_store_read(
    expirer: ExecutionExpirer, api: FakeApi, engine: FakeEngine, clock: FakeClock
) -> None:
    """What kopf's event handler hands over: the run's ttlAfterFinished, read once as it labelled the object."""
    engine.failing = 10**6
    api.objects = {("Execution", "order-1"): ("uid-order-1", None)}
    expirer.notice(ref("order-1"), finished(clock, "run-1"), run_id=None, declared="10s")
    await settle()
    await clock.advance(11)
    await settle()
    assert api.deleted == [("Execution", "order-1")]


def labelled(name: str, *, finished_at_ms: int, ttl: str | None = None, phase: str = "Succeeded") -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": NS,
            "name": name,
            "uid": f"uid-{name}",
            "labels": {FINISHED_LABEL: "true"},
            "annotations": {TTL_ANNOTATION: ttl} if ttl else {},
        },
        "status": {"phase": phase, "finishedAt": rfc3339(finished_at_ms)},
    }


async def test_the_sweep_learns_due_times_from_the_objects_alone_and_keeps_only_those_before_the_next_sweep(
    clock: FakeClock, api: FakeApi, engine: FakeEngine
) -> None:
    """After a restart: no store read (the engine fails every read here), the declared time-to-live from
    the annotation, and an object due after the next sweep is not kept in memory."""
    engine.failing = 10**6
    now = clock.now_ms()
    api.labelled = [
        labelled("soon", finished_at_ms=now, ttl="10s"),
        labelled("default", finished_at_ms=now),  # the default: 60 s
        labelled("later", finished_at_ms=now, ttl="2h"),
        labelled("kept", finished_at_ms=now, ttl="never"),
        labelled("by-hand", finished_at_ms=now, phase="Running"),
    ]
    api.objects = {("Execution", obj["metadata"]["name"]): (obj["metadata"]["uid"], None) for obj in api.labelled}
    expirer = ExecutionExpirer(
        cast(EngineService, engine),
        cast(Any, api),
        clock=clock,
        policy=TtlPolicy(default_ms=60_000),
        bucket=TokenBucket(rate=1000, burst=1000, clock=clock),
        horizon_s=3600,
    )
    await expirer.start()
    try:
        expirer.start_sweeps()
        await settle()
        assert api.lists == 1 and len(expirer.queue) == 2, "soon and default; later is due after the next sweep"
        assert api.marks == [("by-hand", {"labels": {FINISHED_LABEL: None}, "annotations": None})]
        await clock.advance(61)
        await settle()
        assert api.deleted == [("Execution", "soon"), ("Execution", "default")]
        api.labelled = [obj for obj in api.labelled if obj["metadata"]["name"] in ("later", "kept")]
        await clock.advance(3600)
        await settle()
        assert api.lists == 2
        await clock.advance(3600)
        await settle()
        assert ("Execution", "later") in api.deleted and ("Execution", "kept") not in api.deleted
    finally:
        await expirer.stop()
