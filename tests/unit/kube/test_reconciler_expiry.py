"""The reconciler's part in Execution objects' time-to-live (issue 19): finished objects are handed to
the expirer with no store read, and one whose history the store's retention removed is not started
again when the operator resumes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from cerebelum_operator.kube.client import ObjectRef
from cerebelum_operator.kube.reconciler import ObjectView
from cerebelum_operator.runtime import RetentionService

from .world import SIMPLE, TYPED_INPUT, World, add_execution, add_workflow, complete_step, started_execution


@dataclass
class RecordingExpirer:
    noticed: list[tuple[ObjectRef, dict[str, Any], str | None]] = field(default_factory=list)
    now: list[str] = field(default_factory=list)
    resumed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def notice(self, ref: ObjectRef, status: dict[str, Any], *, run_id: str | None, label: bool = False) -> None:
        assert label, "a refusal is labelled finished, like any finished object"
        self.noticed.append((ref, dict(status), run_id))

    def resumed_finished(self, ref: ObjectRef, status: dict[str, Any]) -> None:
        self.resumed.append((ref.name, dict(status)))

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
async def test_a_finished_object_resumed_unlabelled_goes_to_the_expirer_and_the_store_is_not_read(
    world: World, phase: str
) -> None:
    """Finished before an upgrade (or before the operator could label it): its status is final. Whether its
    history is still in the store is the expirer's business (one row read, for its time-to-live)."""
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
    assert expirer.resumed == [("order-1", shown["status"])] and expirer.noticed == []
    assert not world.reconciler.writer.tracked(shown["metadata"]["uid"]), "nothing to project: no replay"


async def test_an_execution_refused_before_it_ran_is_handed_to_the_expirer_with_its_refusal(world: World) -> None:
    expirer = RecordingExpirer()
    world.reconciler.expirer = expirer  # type: ignore[assignment]
    add_workflow(world, "typed", TYPED_INPUT)
    refused = add_execution(world, "typed-1", "typed", input={"count": "many"})
    outcome = await world.reconciler.execution_seen(ObjectView.of(refused), first_attempt=True)

    assert outcome.status["phase"] == "Failed"
    ((ref, status, run_id),) = expirer.noticed
    assert ref.name == "typed-1" and run_id is None
    assert status["phase"] == "Failed" and status["conditions"], "the refusal's time says when it ended"
