"""Child executions as Execution objects: created owned by the parent's, viewed (never started) once verified.

The world (a real engine and store, a fake API and writer) is in `world.py`; a real outbox relay
starts the children.
"""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase
from cerebelum_operator.kube.children import (
    CHILD_ANNOTATION,
    INPUT_OMITTED_ANNOTATION,
    MAX_CHILD_INPUT_BYTES,
    PARENT_LABEL,
    PARENT_STEP_ANNOTATION,
    child_body,
)
from cerebelum_operator.kube.client import ObjectRef
from cerebelum_operator.kube.names import MAX_NAME_LENGTH, NAME_PATTERN, child_object_name
from cerebelum_operator.kube.reconciler import ObjectView
from cerebelum_operator.runtime import Relay

from .world import NS, World, body, started_execution

PARENT: dict[str, Any] = {
    "timeline": ["Run_Child", "after"],
    "steps": {"Run_Child": {"child": {"workflow": "greeter", "input": "{'name': input.who}"}}},
}
GREETER: dict[str, Any] = {"timeline": ["wait"], "steps": {"wait": {"signal": {"name": "go"}}}}


@pytest.fixture
async def relay(world: World) -> AsyncIterator[Relay]:
    await world.engine.put_workflow(f"{NS}/greeter", GREETER)
    relay = Relay(world.db, world.engine, clock=world.clock)
    await relay.start()
    yield relay
    await relay.stop()


async def settle(world: World, relay: Relay) -> None:
    await relay.idle()
    await world.reconciler.children.idle()


async def parent_with_child(world: World, relay: Relay) -> tuple[str, str, dict[str, Any]]:
    """The parent's engine id, its child's, and the child's object as the operator created it."""
    parent_id = await started_execution(world, "orders-1", "orders", PARENT, input={"who": "ada"})
    await settle(world, relay)
    [link] = (await world.engine.state_of(parent_id)).children
    [created] = world.api.created
    return parent_id, link.child_id, created


def view(document: dict[str, Any]) -> ObjectView:
    return ObjectView.of(copy.deepcopy(document))


async def test_a_child_gets_an_execution_object_owned_by_its_parent_s_naming_and_annotating_it(
    world: World, relay: Relay
) -> None:
    parent_id, child_id, created = await parent_with_child(world, relay)

    meta = created["metadata"]
    assert meta["name"] == child_object_name("orders-1", "Run_Child", child_id)
    assert meta["name"].startswith("orders-1-run-child-")
    assert meta["namespace"] == NS
    assert meta["ownerReferences"] == [
        {"apiVersion": "cerebelum.io/v1alpha1", "kind": "Execution", "name": "orders-1", "uid": parent_id,
         "controller": True}
    ]  # fmt: skip
    assert meta["labels"] == {PARENT_LABEL: parent_id}
    assert meta["annotations"] == {CHILD_ANNOTATION: child_id, PARENT_STEP_ANNOTATION: "Run_Child"}
    assert created["spec"] == {"workflow": "greeter", "input": {"name": "ada"}}


async def test_the_child_s_object_is_a_view_of_the_running_child_and_starts_nothing(world: World, relay: Relay) -> None:
    _, child_id, created = await parent_with_child(world, relay)
    before = await world.engine.list_executions()

    outcome = await world.reconciler.execution_seen(view(created), first_attempt=True)

    assert outcome.status == {}
    assert outcome.event is None  # its owner reference and status say who started it: no Event
    assert world.writer.refs[child_id].name == created["metadata"]["name"]
    assert world.writer.parents[child_id] == "orders-1"
    assert len(await world.engine.list_executions()) == len(before)
    assert await world.engine.get_execution(created["metadata"]["uid"]) is None


async def test_the_objects_of_a_parent_s_running_children_are_created_again_when_the_parent_is_seen_again(
    world: World, relay: Relay
) -> None:
    _, child_id, created = await parent_with_child(world, relay)
    del world.api.objects[("Execution", NS, created["metadata"]["name"])]  # a crash before it was created
    world.reconciler.children._seen.clear()  # a new operator process remembers nothing

    await world.reconciler.execution_seen(view(world.api.objects[("Execution", NS, "orders-1")]), first_attempt=False)

    assert [c["metadata"]["annotations"][CHILD_ANNOTATION] for c in world.api.created] == [child_id, child_id]
    await world.reconciler.execution_seen(view(world.api.objects[("Execution", NS, "orders-1")]), first_attempt=False)
    assert len(world.api.created) == 2, "an object that exists is read, not created again"


def forged(claimed: str, *, owner: tuple[str, str] | None, name: str = "forged") -> dict[str, Any]:
    document = body(name, {"workflow": "greeter"}, uid=f"uid-{name}")
    document["metadata"]["annotations"] = {CHILD_ANNOTATION: claimed}
    if owner is not None:
        document["metadata"]["ownerReferences"] = [
            {"apiVersion": "cerebelum.io/v1alpha1", "kind": "Execution", "name": owner[0], "uid": owner[1],
             "controller": True}
        ]  # fmt: skip
    return document


async def test_an_object_claiming_another_namespace_s_execution_is_refused_and_views_nothing(
    world: World, relay: Relay
) -> None:
    parent_id, _, _ = await parent_with_child(world, relay)
    await world.engine.put_workflow("team-b/secret", GREETER)
    await world.engine.start("team-b/secret", None, execution_id="their-execution")
    claim = forged("their-execution", owner=("orders-1", parent_id))

    outcome = await world.reconciler.execution_seen(view(claim), first_attempt=True)

    assert outcome.status["phase"] == "Failed"
    conditions = {c["type"]: c for c in outcome.status["conditions"]}
    assert conditions["Accepted"]["reason"] == "InvalidChild"
    assert (
        conditions["Accepted"]["message"]
        == "engine execution 'their-execution' is not an execution of namespace team-a"
    )
    assert "their-execution" not in world.writer.refs


async def test_an_object_claiming_an_execution_that_is_not_its_owner_s_child_is_refused(
    world: World, relay: Relay
) -> None:
    _, child_id, _ = await parent_with_child(world, relay)
    other = await started_execution(world, "other-1", "other", {"timeline": ["s1"]})

    outcome = await world.reconciler.execution_seen(
        view(forged(child_id, owner=("other-1", other))), first_attempt=True
    )

    assert outcome.status["phase"] == "Failed"
    assert f"is not a child of the owner Execution 'other-1' (engine id {other!r})" in outcome.status["error"]
    assert child_id not in world.writer.refs


@pytest.mark.parametrize(
    ("owner", "message"),
    [
        pytest.param(None, "but no Execution owns this object", id="no-owner"),
        pytest.param(("orders-1", "some-other-uid"), "is not in this namespace any more", id="owner-uid-differs"),
        pytest.param(("../../team-b/executions/x", "u"), "is not a Kubernetes object name", id="owner-name-a-path"),
    ],
)
async def test_an_object_claiming_a_child_without_its_parent_as_owner_is_refused(
    world: World, relay: Relay, owner: tuple[str, str] | None, message: str
) -> None:
    _, child_id, _ = await parent_with_child(world, relay)

    outcome = await world.reconciler.execution_seen(view(forged(child_id, owner=owner)), first_attempt=True)

    assert outcome.status["phase"] == "Failed" and message in outcome.status["error"]


async def test_deleting_an_object_that_only_claims_a_child_cancels_nothing(world: World, relay: Relay) -> None:
    _, child_id, _ = await parent_with_child(world, relay)

    await world.reconciler.execution_deleted(view(forged(child_id, owner=None)))

    assert (await world.engine.state_of(child_id)).display_phase() == ExecutionPhase.WAITING_FOR_SIGNAL


async def test_deleting_the_child_s_object_cancels_the_child(world: World, relay: Relay) -> None:
    _, child_id, created = await parent_with_child(world, relay)

    await world.reconciler.execution_deleted(view(created))

    child = await world.engine.state_of(child_id)
    assert child.phase == ExecutionPhase.CANCELLED
    assert child.error == f"Execution {created['metadata']['name']} was deleted"


async def test_deleting_the_parent_s_object_cancels_the_parent_and_with_it_the_child(
    world: World, relay: Relay
) -> None:
    parent_id, child_id, _ = await parent_with_child(world, relay)

    await world.reconciler.execution_deleted(view(world.api.objects[("Execution", NS, "orders-1")]))
    await settle(world, relay)

    assert (await world.engine.state_of(parent_id)).phase == ExecutionPhase.CANCELLED
    assert (await world.engine.state_of(child_id)).phase == ExecutionPhase.CANCELLED


async def test_a_signal_for_a_child_s_object_reaches_the_child(world: World, relay: Relay) -> None:
    parent_id, child_id, created = await parent_with_child(world, relay)
    signal = {"execution": created["metadata"]["name"], "name": "go", "data": 1, "sender": "bob"}

    outcome = await world.reconciler.signal_created(ObjectView.of(body("go-1", signal)))
    await settle(world, relay)

    assert outcome.status["phase"] == "Delivered" and outcome.status["runId"] == child_id
    assert (await world.engine.state_of(child_id)).phase == ExecutionPhase.SUCCEEDED
    assert (await world.engine.state_of(parent_id)).children[0].phase == "Succeeded"


# -- names and bodies ----------------------------------------------------------------------------


def test_a_child_s_object_name_is_deterministic_valid_and_distinct_per_child() -> None:
    first = child_object_name("orders-1", "Charge_Card", "uid:Charge_Card:1.1")

    assert first == child_object_name("orders-1", "Charge_Card", "uid:Charge_Card:1.1")
    assert re.fullmatch(r"orders-1-charge-card-[0-9a-f]{8}", first)
    assert child_object_name("orders-1", "Charge_Card", "uid:Charge_Card:1.2") != first
    # Two steps that read the same once lowercased still get two names.
    assert child_object_name("orders-1", "charge_card", "uid:charge_card:1.1") != first


@pytest.mark.parametrize(
    ("parent", "step"),
    [
        pytest.param("p" * MAX_NAME_LENGTH, "S" * 63, id="longest-names"),
        pytest.param("a." * 126 + "b", "_" * 63, id="dots-and-a-step-of-nothing-but-underscores"),
        pytest.param("x" * 200 + "-", "-x-", id="cut-at-a-dash"),
    ],
)
def test_a_child_s_object_name_stays_a_valid_name_within_253_characters_whatever_the_names(
    parent: str, step: str
) -> None:
    name = child_object_name(parent, step, "some-child-id")

    assert len(name) <= MAX_NAME_LENGTH
    assert re.fullmatch(NAME_PATTERN, name), name


def test_a_child_input_too_large_for_an_object_is_left_out_and_its_size_annotated() -> None:
    parent = ObjectRef(kind="Execution", namespace=NS, name="orders-1", uid="uid-1")
    large = "x" * MAX_CHILD_INPUT_BYTES

    document = child_body(parent, child_id="c", step="s", workflow="greeter", input=large)

    assert document["spec"] == {"workflow": "greeter"}
    assert document["metadata"]["annotations"][INPUT_OMITTED_ANNOTATION] == (
        f"{MAX_CHILD_INPUT_BYTES + 2} bytes of JSON, over {MAX_CHILD_INPUT_BYTES}"
    )
