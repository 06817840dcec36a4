"""The status writer follows a continue-as-new chain into one object, and shows parents and children.

A real engine, outbox relay and status writer over the world's fake API (`world.py`); the writer's
interval passes only when the test moves the fake clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.kube.client import ObjectRef
from cerebelum_operator.kube.names import child_object_name
from cerebelum_operator.kube.status_writer import StatusWriter
from cerebelum_operator.runtime import Relay
from tests.support.waiting import advance_until

from .world import NS, World

LOOP: dict[str, Any] = {
    "input": {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]},
    "timeline": ["tick", "again"],
    "steps": {
        "tick": {"signal": {"name": "tick"}},
        "again": {"continueAsNew": {"input": "{'count': input.count + 1}"}},
    },
    "branch": {"tick": [{"when": "input.count >= 2", "then": "succeed"}]},
}
PARENT: dict[str, Any] = {
    "timeline": ["spawn"],
    "steps": {"spawn": {"child": {"workflow": "greeter"}}},
}
GREETER: dict[str, Any] = {"timeline": ["wait"], "steps": {"wait": {"signal": {"name": "go"}}}}


@pytest.fixture
async def running(world: World) -> AsyncIterator[tuple[Relay, StatusWriter]]:
    relay = Relay(world.db, world.engine, clock=world.clock)
    await relay.start()
    writer = StatusWriter(world.engine, world.api, clock=world.clock, min_interval_s=1.0)  # type: ignore[arg-type]
    await writer.start()
    yield relay, writer
    await writer.stop()
    await relay.stop()


def shown(world: World, ref: ObjectRef) -> dict[str, Any]:
    """The object's status after every patch (merge patches: a later value wins)."""
    status: dict[str, Any] = {}
    for patch in world.api.patches:
        if patch.ref == ref:
            status.update(patch.status)
    return status


async def test_the_first_run_s_object_follows_the_chain_to_its_latest_run_and_shows_it_succeeded(
    world: World, running: tuple[Relay, StatusWriter]
) -> None:
    relay, writer = running
    await world.engine.put_workflow(f"{NS}/loop", LOOP)
    await world.engine.start(f"{NS}/loop", {"count": 0}, execution_id="uid-loop-1")
    ref = ObjectRef(kind="Execution", namespace=NS, name="loop-1", uid="uid-loop-1")
    writer.track("uid-loop-1", ref, status={}, generation=1)
    await advance_until(
        world.clock, lambda: shown(world, ref).get("phase") == "WaitingForSignal", step=0.5, what="run 1"
    )

    for run in (2, 3):
        latest = await world.engine.latest_run("uid-loop-1")
        await world.engine.signal(latest, cmd.Signal("tick"))
        await relay.idle()

        def shows_run(run: int = run) -> bool:
            return bool(shown(world, ref).get("run") == run)

        await advance_until(world.clock, shows_run, step=0.5, what=f"run {run}")
        assert shown(world, ref)["phase"] == "WaitingForSignal", "a run that continued is never the object's phase"
    latest = await world.engine.latest_run("uid-loop-1")
    await world.engine.signal(latest, cmd.Signal("tick"))
    await advance_until(world.clock, lambda: shown(world, ref).get("phase") == "Succeeded", step=0.5, what="the end")

    status = shown(world, ref)
    assert (status["executionId"], status["run"], status["runId"]) == ("uid-loop-1", 3, latest)
    assert latest == "uid-loop-1:run-3"
    phases = [patch.status["phase"] for patch in world.api.patches if "phase" in patch.status]
    assert "ContinuedAsNew" not in phases
    assert not writer.tracked("uid-loop-1")


async def test_a_parent_shows_its_child_by_object_name_and_the_child_shows_its_parent(
    world: World, running: tuple[Relay, StatusWriter]
) -> None:
    relay, writer = running
    await world.engine.put_workflow(f"{NS}/parent", PARENT)
    await world.engine.put_workflow(f"{NS}/greeter", GREETER)
    parent_ref = ObjectRef(kind="Execution", namespace=NS, name="parent-1", uid="uid-parent-1")
    await world.engine.start(f"{NS}/parent", None, execution_id="uid-parent-1")
    writer.track("uid-parent-1", parent_ref, status={}, generation=1)
    await relay.idle()
    [link] = (await world.engine.state_of("uid-parent-1")).children
    child_name = child_object_name("parent-1", "spawn", link.child_id)
    child_ref = ObjectRef(kind="Execution", namespace=NS, name=child_name, uid="uid-child")
    writer.track(link.child_id, child_ref, status={}, generation=1, parent_name="parent-1")

    await advance_until(
        world.clock,
        lambda: shown(world, parent_ref).get("children") and shown(world, child_ref).get("parent"),
        step=0.5,
        what="both statuses",
    )

    assert shown(world, parent_ref)["children"] == [
        {"step": "spawn", "name": child_name, "executionId": link.child_id, "workflow": "greeter", "phase": "Running"}
    ]
    assert shown(world, parent_ref)["childCount"] == 1
    assert shown(world, child_ref)["parent"] == {"name": "parent-1", "executionId": "uid-parent-1", "step": "spawn"}
