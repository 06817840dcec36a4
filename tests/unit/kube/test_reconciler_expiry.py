"""The reconciler's part in Execution objects' time-to-live (issue 19): finished objects are handed to
the expirer with no store read, and one whose history the store's retention removed is not started
again when the operator resumes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from cerebelum_operator.kube.client import ObjectRef
from cerebelum_operator.kube.expirer import FINISHED_LABEL, TTL_ANNOTATION
from cerebelum_operator.kube.handlers import mark_finished
from cerebelum_operator.kube.reconciler import ObjectView
from cerebelum_operator.runtime import RetentionService

from .world import (
    SIMPLE,
    TYPED_INPUT,
    World,
    add_execution,
    add_workflow,
    complete_step,
    started_execution,
    with_status,
)


@dataclass
class RecordingExpirer:
    noticed: list[tuple[ObjectRef, dict[str, Any], str | None]] = field(default_factory=list)
    now: list[str] = field(default_factory=list)

    def notice(
        self, ref: ObjectRef, status: dict[str, Any], *, run_id: str | None, declared: str | None = None
    ) -> None:
        assert run_id is None, "the reconciler has read the run's time-to-live already"
        self.noticed.append((ref, dict(status), declared))

    def expire_now(self, ref: ObjectRef) -> None:
        self.now.append(ref.name)


async def retired(world: World, name: str) -> None:
    """An execution run to its end, then removed from the store by the retention period."""
    uid = await started_execution(world, name, "simple", SIMPLE)
    await complete_step(world, uid, "fetch", {})
    await complete_step(world, uid, "store", {})
    await world.clock.advance(2)
    assert await RetentionService(world.db, world.engine, clock=world.clock, period_ms=1000).sweep() == 1


async def test_an_object_whose_history_the_store_retention_removed_is_not_started_again_but_deleted_at_once(
    world: World,
) -> None:
    """Its status says it runs: under load the status may lag behind an execution that ended."""
    expirer = RecordingExpirer()
    world.reconciler.expirer = expirer  # type: ignore[assignment]
    await retired(world, "order-1")

    seen = add_execution(world, "order-1", "simple")
    seen["status"] = {"phase": "Running"}
    outcome = await world.reconciler.execution_seen(ObjectView.of(seen), first_attempt=True)

    assert outcome.status == {} and outcome.event is None
    assert expirer.now == ["order-1"] and expirer.noticed == []


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled"])
async def test_a_finished_object_resumed_unlabelled_costs_no_store_read_and_no_replay(world: World, phase: str) -> None:
    """Finished before an upgrade (or before kopf could label it): its status is final; kopf's event
    handler labels it (`execution_finished`)."""
    expirer = RecordingExpirer()
    world.reconciler.expirer = expirer  # type: ignore[assignment]
    shown = add_execution(world, "order-1", "never-stored")
    shown["status"] = {"phase": phase, "runId": "run-1", "finishedAt": "2026-01-01T00:00:00Z"}

    def no_store(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished object costs no store read here")

    world.reconciler.engine.get_execution = no_store  # type: ignore[method-assign, assignment]
    world.reconciler.engine.start = no_store  # type: ignore[method-assign, assignment]
    outcome = await world.reconciler.execution_seen(ObjectView.of(shown), first_attempt=True)

    assert outcome.status == {} and outcome.event is None
    assert expirer.noticed == [] and expirer.now == []
    assert not world.reconciler.writer.tracked(shown["metadata"]["uid"]), "nothing to project: no replay"


async def test_an_execution_seen_finished_goes_to_the_expirer_with_its_runs_ttl_as_the_annotation(world: World) -> None:
    expirer = RecordingExpirer()
    world.reconciler.expirer = expirer  # type: ignore[assignment]
    uid = await started_execution(world, "brief-1", "brief", {**SIMPLE, "ttlAfterFinished": "5m"})
    await complete_step(world, uid, "fetch", {})
    await complete_step(world, uid, "store", {})
    shown = add_execution(world, "brief-1", "brief", uid=uid)
    shown["status"] = {"phase": "Succeeded", "runId": uid, "finishedAt": "2026-01-01T00:00:00Z"}

    annotations = await world.reconciler.execution_finished(ObjectView.of(shown))

    assert annotations == {TTL_ANNOTATION: "5m"}
    assert [(ref.name, declared) for ref, _, declared in expirer.noticed] == [("brief-1", "5m")]


async def test_one_seen_finished_whose_history_the_retention_removed_goes_at_once(world: World) -> None:
    expirer = RecordingExpirer()
    world.reconciler.expirer = expirer  # type: ignore[assignment]
    await retired(world, "order-1")
    shown = add_execution(world, "order-1", "simple")
    shown["status"] = {"phase": "Succeeded", "runId": shown["metadata"]["uid"]}

    assert await world.reconciler.execution_finished(ObjectView.of(shown)) == {}
    assert expirer.now == ["order-1"] and expirer.noticed == []


async def test_an_execution_refused_before_it_ran_is_handed_to_the_expirer_with_its_refusal(world: World) -> None:
    expirer = RecordingExpirer()
    world.reconciler.expirer = expirer  # type: ignore[assignment]
    add_workflow(world, "typed", TYPED_INPUT)
    refused = add_execution(world, "typed-1", "typed", input={"count": "many"})
    outcome = await world.reconciler.execution_seen(ObjectView.of(refused), first_attempt=True)
    assert outcome.status["phase"] == "Failed"
    assert expirer.noticed == [], "kopf writes the refusal after the handler; its event handler sees it then"

    annotations = await world.reconciler.execution_finished(ObjectView.of(with_status(refused, outcome)))

    assert annotations == {TTL_ANNOTATION: None}, "no history: the default time-to-live"
    ((ref, status, declared),) = expirer.noticed
    assert ref.name == "typed-1" and declared is None
    assert status["phase"] == "Failed" and status["conditions"], "the refusal's time says when it ended"


def test_the_finished_mark_labels_annotates_and_drops_only_our_finalizer() -> None:
    """What kopf's patch does to the body it last saw: one JSON patch, with kopf's own finalizer removal."""
    body: dict[str, Any] = {
        "metadata": {
            "name": "order-1",
            "labels": {"team": "a"},
            "annotations": {TTL_ANNOTATION: "stale"},
            "finalizers": ["cerebelum.io/cancel-on-delete", "someone.else/keep"],
        }
    }
    mark_finished(body, annotations={TTL_ANNOTATION: None})
    assert body["metadata"] == {
        "name": "order-1",
        "labels": {"team": "a", FINISHED_LABEL: "true"},
        "annotations": {},
        "finalizers": ["someone.else/keep"],
    }
    bare: dict[str, Any] = {"metadata": {"name": "order-2", "finalizers": ["cerebelum.io/cancel-on-delete"]}}
    mark_finished(bare, annotations={TTL_ANNOTATION: "1h"})
    assert bare["metadata"] == {
        "name": "order-2",
        "labels": {FINISHED_LABEL: "true"},
        "annotations": {TTL_ANNOTATION: "1h"},
    }
