"""Schedule objects (kube/schedules.py and the reconciler's Schedule methods), against a real engine,
a real schedule service and store, and a fake Kubernetes API (world.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cerebelum_operator.engine.schedule_spec import ScheduleSpec
from cerebelum_operator.engine.schedules import Fire, Outcome, ScheduleState, execution_id, trigger_execution_id
from cerebelum_operator.kube.children import CHILD_ANNOTATION
from cerebelum_operator.kube.client import ObjectRef
from cerebelum_operator.kube.crdgen import build_crds
from cerebelum_operator.kube.names import NAME_PATTERN
from cerebelum_operator.kube.reconciler import ObjectView, Reconciler, Retry
from cerebelum_operator.kube.resources import ScheduleStatus
from cerebelum_operator.kube.schedules import (
    MAX_STATUS_FIRES,
    SCHEDULE_LABEL,
    fired_by,
    project_schedule,
    schedule_execution_body,
    scheduled_object_name,
    timing,
)
from cerebelum_operator.runtime import Database, EngineService, FakeClock, ScheduleService, ScheduleView
from cerebelum_operator.store import open_store

from .world import NOW_MS, NS, FakeApi, FakeApprovers, FakeWriter, body, conditions_by_type

KEY = f"{NS}/nightly"
NAP = {"timeline": ["nap"], "steps": {"nap": {"timer": {"duration": "1ms"}}}}


# -- pure parts ----------------------------------------------------------------------------


def test_fired_by_accepts_the_ids_the_schedule_gives_and_nothing_else() -> None:
    due = execution_id(KEY, NOW_MS)
    triggered = trigger_execution_id(KEY, NOW_MS + 123)

    assert fired_by(KEY, due) and fired_by(KEY, triggered)
    assert not fired_by(f"{NS}/other", due), "another schedule's fire"
    assert not fired_by(f"{NS}/nightly-2", execution_id(KEY, NOW_MS)), "a prefix of another name"
    assert not fired_by(KEY, f"{NS}:nightly-20231114T999999Z"), "not a time"
    assert not fired_by(KEY, due + "x") and not fired_by(KEY, "some-uid")


def test_fired_by_recomputes_the_hashed_id_of_a_long_name() -> None:
    key = f"{NS}/{'a' * 200}"
    due = execution_id(key, NOW_MS)

    assert fired_by(key, due)
    assert not fired_by(f"{NS}/{'a' * 199}b", due)


def test_a_fire_s_object_name_is_a_valid_deterministic_name_with_its_due_time() -> None:
    name = scheduled_object_name("nightly", KEY, execution_id(KEY, NOW_MS))

    assert name == scheduled_object_name("nightly", KEY, execution_id(KEY, NOW_MS))
    assert re.fullmatch(r"nightly-20231114t221320z-[0-9a-f]{8}", name), name
    long_name = scheduled_object_name("n" * 253, f"{NS}/{'n' * 253}", execution_id(f"{NS}/{'n' * 253}", NOW_MS))
    assert len(long_name) <= 253 and re.fullmatch(NAME_PATTERN, long_name)
    triggered = scheduled_object_name("nightly", KEY, trigger_execution_id(KEY, NOW_MS + 5))
    assert re.fullmatch(NAME_PATTERN, triggered) and "trigger" in triggered


def test_a_fire_s_body_is_owned_by_the_schedule_labelled_and_annotated() -> None:
    ref = ObjectRef(kind="Schedule", namespace=NS, name="nightly", uid="u-1")
    engine_id = execution_id(KEY, NOW_MS)

    body = schedule_execution_body(ref, key=KEY, engine_id=engine_id, workflow="nap", input={"a": 1})

    meta = body["metadata"]
    assert meta["ownerReferences"] == [
        {"apiVersion": "cerebelum.io/v1alpha1", "kind": "Schedule", "name": "nightly", "uid": "u-1", "controller": True}
    ]
    assert meta["labels"] == {SCHEDULE_LABEL: "nightly"} and meta["annotations"] == {CHILD_ANNOTATION: engine_id}
    assert body["spec"] == {"workflow": "nap", "input": {"a": 1}}


def test_timing_is_one_line() -> None:
    assert timing(ScheduleSpec(workflow="w", interval="90s")) == "every 90s"
    assert timing(ScheduleSpec(workflow="w", interval="1h", offset="15m")) == "every 1h +15m"
    assert timing(ScheduleSpec(workflow="w", cron="@daily")) == "@daily"
    assert timing(ScheduleSpec(workflow="w", cron="30 2 * * *", timezone="Europe/Paris")) == "30 2 * * * (Europe/Paris)"


def test_the_projection_keeps_the_last_ten_fires_and_fits_the_crd_model() -> None:
    spec = ScheduleSpec(workflow=f"{NS}/nap", interval="10s")
    fires = tuple(
        Fire(NOW_MS + i * 10_000, NOW_MS + i * 10_000, Outcome.STARTED, execution_id(KEY, NOW_MS + i * 10_000))
        for i in range(15)
    )
    missed = Fire(NOW_MS + 200_000, NOW_MS + 300_000, Outcome.MISSED, None, "late", count=3)
    state = ScheduleState(cursor_ms=NOW_MS + 200_000, running_id=fires[-1].execution_id, started=15, missed=3)
    state = replace(state, recent=(*fires, missed), last_fire_ms=fires[-1].at_ms, last_due_ms=fires[-1].due_ms)
    view = ScheduleView(KEY, spec, state, NOW_MS + 210_000, NOW_MS + 210_000, 1, NOW_MS, NOW_MS)

    status = project_schedule(view, schedule_name="nightly")

    ScheduleStatus.model_validate(status)
    assert len(status["recentFires"]) == MAX_STATUS_FIRES
    assert status["recentFires"][-1] == {
        "dueTime": "2023-11-14T22:16:40.000Z",
        "firedAt": "2023-11-14T22:18:20.000Z",
        "outcome": "missed",
        "reason": "late",
        "count": 3,
    }
    last_started = status["recentFires"][-2]
    assert last_started["execution"] == scheduled_object_name("nightly", KEY, last_started["executionId"])
    assert (status["started"], status["missed"], status["schedule"]) == (15, 3, "every 10s")
    assert status["nextFireTime"] == "2023-11-14T22:16:50.000Z"


def test_the_schedule_crd_names_a_workflow_never_a_path_and_shows_the_fire_times() -> None:
    (crd,) = [c for c in build_crds() if c["spec"]["names"]["kind"] == "Schedule"]
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]

    assert spec["properties"]["workflow"]["pattern"] == NAME_PATTERN
    assert "self == oldSelf" not in str(spec), "a Schedule's spec may change (pause, resume, new timing)"
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Workflow", "Schedule", "Timezone", "Paused", "Last-Fire", "Next-Fire", "Age"]


# -- the reconciler ------------------------------------------------------------------------


class SchedulesWorld:
    def __init__(self, engine: EngineService, schedules: ScheduleService, api: FakeApi, reconciler: Reconciler) -> None:
        self.engine = engine
        self.schedules = schedules
        self.api = api
        self.reconciler = reconciler


@pytest.fixture
async def sworld(tmp_path: Path) -> AsyncIterator[SchedulesWorld]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    db = Database(store)
    clock = FakeClock(start_ms=NOW_MS)
    engine = EngineService(db, clock=clock)
    schedules = ScheduleService(db, engine, clock=clock)
    api = FakeApi()
    reconciler = Reconciler(
        engine,
        api,  # type: ignore[arg-type]
        FakeWriter(),  # type: ignore[arg-type]
        clock=clock,
        approvers=FakeApprovers(),
        schedules=schedules,
        schedule_status_interval_s=0.0,
    )
    try:
        yield SchedulesWorld(engine, schedules, api, reconciler)
    finally:
        assert reconciler.schedule_objects is not None
        await reconciler.schedule_objects.stop()
        db.close()


def schedule_body(name: str, spec: dict[str, Any], *, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "cerebelum.io/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1},
        "spec": spec,
        "status": status or {},
    }


def add_schedule(world: SchedulesWorld, name: str, spec: dict[str, Any]) -> ObjectView:
    body = schedule_body(name, spec)
    world.api.put("Schedule", body)
    return ObjectView.of(body)


async def test_an_invalid_spec_is_refused_naming_the_field_and_nothing_is_put(sworld: SchedulesWorld) -> None:
    view = add_schedule(sworld, "nightly", {"workflow": "nap", "cron": "every day"})

    outcome = await sworld.reconciler.schedule_changed(view, first_attempt=True)

    ready = conditions_by_type(outcome.status)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"].startswith("schedule spec is not valid: spec.cron: cron 'every day' must have 5 fields")
    assert outcome.event is not None and outcome.event[1] == "InvalidSpec"
    assert await sworld.schedules.get(KEY) is None


async def test_a_workflow_that_is_a_path_is_refused(sworld: SchedulesWorld) -> None:
    view = add_schedule(sworld, "nightly", {"workflow": "../other/nap", "interval": "10s"})

    outcome = await sworld.reconciler.schedule_changed(view, first_attempt=True)

    ready = conditions_by_type(outcome.status)["Ready"]
    assert ready["reason"] == "InvalidSpec" and ready["message"].startswith("spec.workflow '../other/nap' is not")


async def test_a_missing_workflow_waits_and_says_so(sworld: SchedulesWorld) -> None:
    view = add_schedule(sworld, "nightly", {"workflow": "nap", "interval": "10s"})

    with pytest.raises(Retry):
        await sworld.reconciler.schedule_changed(view, first_attempt=True)

    (patch,) = sworld.api.patches
    assert conditions_by_type(patch.status)["Ready"]["reason"] == "WorkflowNotFound"
    assert await sworld.schedules.get(KEY) is None


@pytest.mark.parametrize(
    ("workflow", "split", "reason"),
    [
        ({"timeline": ["fetch"], "steps": {"ghost": {"timeout": "1m"}}}, False, "WorkflowInvalid"),
    ],
)
async def test_a_schedule_of_a_workflow_it_cannot_run_waits_saying_why_and_nothing_is_put(
    sworld: SchedulesWorld, workflow: dict[str, Any], split: bool, reason: str
) -> None:
    if split:
        sworld.engine.set_ownership(lambda shard: True)
    sworld.api.put("Workflow", body("nap", workflow))
    view = add_schedule(sworld, "nightly", {"workflow": "nap", "interval": "10s"})

    with pytest.raises(Retry):
        await sworld.reconciler.schedule_changed(view, first_attempt=True)

    (patch,) = sworld.api.patches
    ready = conditions_by_type(patch.status)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert ready["message"].startswith("workflow 'nap'")
    assert await sworld.schedules.get(KEY) is None


async def put_nightly(world: SchedulesWorld, **extra: Any) -> ObjectView:
    world.api.put("Workflow", body("nap", NAP))
    view = add_schedule(world, "nightly", {"workflow": "nap", "interval": "10s", "input": {"n": 1}, **extra})
    outcome = await world.reconciler.schedule_changed(view, first_attempt=True)
    ready = conditions_by_type(outcome.status)["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "Scheduled"), ready
    return view


async def test_a_valid_schedule_is_put_with_its_workflow_key_and_its_workflow_stored(sworld: SchedulesWorld) -> None:
    await put_nightly(sworld)

    stored = await sworld.schedules.get(KEY)
    assert stored is not None and stored.spec.workflow == f"{NS}/nap" and stored.spec.input == {"n": 1}
    assert await sworld.engine.get_workflow(f"{NS}/nap") is not None


async def test_a_fire_becomes_an_execution_object_that_views_it_and_a_forgery_is_refused(
    sworld: SchedulesWorld,
) -> None:
    await put_nightly(sworld)
    assert sworld.reconciler.schedule_objects is not None

    _, engine_id = await sworld.schedules.trigger(KEY)
    await sworld.reconciler.schedule_objects.idle()

    (created,) = [c for c in sworld.api.created if c["kind"] == "Execution"]
    assert created["metadata"]["annotations"][CHILD_ANNOTATION] == engine_id
    assert created["metadata"]["ownerReferences"][0]["kind"] == "Schedule"
    status_patches = [p.status for p in sworld.api.patches if p.ref.kind == "Schedule"]
    assert status_patches and status_patches[-1]["lastExecution"] == engine_id
    outcome = await sworld.reconciler.execution_seen(ObjectView.of(created), first_attempt=True)
    assert outcome.event is None and outcome.status == {}, "accepted: no refusal (and no Started Event)"
    assert sworld.reconciler.writer.tracked(engine_id)
    assert await sworld.engine.get_execution(created["metadata"]["uid"]) is None, "the object's uid started nothing"

    other = add_schedule(sworld, "other", {"workflow": "nap", "interval": "10s"})
    forged = {**created, "metadata": {**created["metadata"], "name": "forged", "uid": "uid-forged"}}
    forged["metadata"]["ownerReferences"] = [
        {**created["metadata"]["ownerReferences"][0], "name": "other", "uid": other.uid}
    ]
    refused = await sworld.reconciler.execution_seen(ObjectView.of(forged), first_attempt=True)
    accepted = conditions_by_type(refused.status)["Accepted"]
    assert accepted["reason"] == "InvalidChild" and "was not started by the Schedule 'other'" in accepted["message"]
    stale_owner = {**forged, "metadata": {**created["metadata"], "name": "stale"}}
    stale_owner["metadata"]["ownerReferences"] = [{**created["metadata"]["ownerReferences"][0], "uid": "uid-gone"}]
    refused = await sworld.reconciler.execution_seen(ObjectView.of(stale_owner), first_attempt=True)
    assert "is not in this namespace" in conditions_by_type(refused.status)["Accepted"]["message"]


async def test_a_resume_creates_the_objects_a_crash_left_out_and_changes_nothing_else(sworld: SchedulesWorld) -> None:
    view = await put_nightly(sworld)
    assert sworld.reconciler.schedule_objects is not None
    sworld.reconciler.schedule_objects.forget(KEY)  # as if the operator died before creating the object
    _, engine_id = await sworld.schedules.trigger(KEY)
    assert not [c for c in sworld.api.created if c["kind"] == "Execution"]
    revision = (await sworld.schedules.get(KEY)).revision  # type: ignore[union-attr]

    await sworld.reconciler.schedule_changed(view, first_attempt=True)

    (created,) = [c for c in sworld.api.created if c["kind"] == "Execution"]
    assert created["metadata"]["annotations"][CHILD_ANNOTATION] == engine_id
    assert (await sworld.schedules.get(KEY)).revision == revision  # type: ignore[union-attr]


async def test_pausing_through_the_spec_shows_the_note_and_deleting_removes_the_schedule(
    sworld: SchedulesWorld,
) -> None:
    await put_nightly(sworld)
    paused = add_schedule(
        sworld, "nightly", {"workflow": "nap", "interval": "10s", "paused": True, "note": "upgrading"}
    )

    outcome = await sworld.reconciler.schedule_changed(paused, first_attempt=False)

    assert outcome.status["paused"] is True and outcome.status["note"] == "upgrading"
    assert outcome.status["nextFireTime"] is None
    assert conditions_by_type(outcome.status)["Ready"]["message"] == "paused: upgrading"
    await sworld.reconciler.schedule_deleted(paused)
    assert await sworld.schedules.get(KEY) is None
