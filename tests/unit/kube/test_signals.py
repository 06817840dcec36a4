"""Signal objects: delivered once to the named Execution's latest run, the sender as admission stamped it.

The world (a real engine and store, a fake API and writer) is in `world.py`.
"""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase
from cerebelum_operator.engine import events as ev
from cerebelum_operator.kube.reconciler import ObjectView, Retry
from cerebelum_operator.runtime import Relay

from .world import NS, World, body, started_execution

WAITS: dict[str, Any] = {"timeline": ["wait", "after"], "steps": {"wait": {"signal": {"name": "ready"}}}}
ALICE = "system:serviceaccount:team-a:alice"


def signal_body(
    name: str, spec: dict[str, Any], *, uid: str | None = None, status: dict[str, Any] | None = None
) -> ObjectView:
    return ObjectView.of(body(name, spec, uid=uid, status=status))


def ready(execution: str = "orders-1", **extra: Any) -> dict[str, Any]:
    return {"execution": execution, "name": "ready", "data": {"batch": 7}, "sender": ALICE, **extra}


async def received(world: World, execution_id: str) -> list[ev.SignalReceived]:
    return [e for e in await world.history(execution_id) if isinstance(e, ev.SignalReceived)]


async def test_a_signal_for_a_waiting_execution_is_delivered_in_the_stamped_sender_s_name_with_its_data(
    world: World,
) -> None:
    execution_id = await started_execution(world, "orders-1", "orders", WAITS)
    assert (await world.engine.state_of(execution_id)).display_phase() == ExecutionPhase.WAITING_FOR_SIGNAL

    outcome = await world.reconciler.signal_created(signal_body("ready-1", ready(), uid="uid-signal-1"))

    assert outcome.status["phase"] == "Delivered", outcome.status
    assert outcome.status["sender"] == ALICE
    assert outcome.status["runId"] == execution_id
    assert outcome.status["message"] == f"signal ready from {ALICE} delivered to orders-1"
    assert outcome.status["handledAt"] == "2023-11-14T22:13:20.000Z"
    assert [(e.name, e.data, e.sender, e.request_id) for e in await received(world, execution_id)] == [
        ("ready", {"batch": 7}, ALICE, "uid-signal-1")
    ]
    state = await world.engine.state_of(execution_id)
    assert state.results["wait"]["sender"] == ALICE
    assert [(e.reason, e.ref.name) for e in world.api.events] == [("Signalled", "orders-1")]
    assert world.approvers.stamps == ["sender"]


async def test_a_signal_handled_again_after_a_restart_is_recorded_once_and_stays_delivered(world: World) -> None:
    execution_id = await started_execution(world, "orders-1", "orders", WAITS)
    signal = signal_body("ready-1", ready(), uid="uid-signal-1")

    first = await world.reconciler.signal_created(signal)
    again = await world.reconciler.signal_created(signal)  # its status was never written

    assert (first.status["phase"], again.status["phase"]) == ("Delivered", "Delivered")
    assert len(await received(world, execution_id)) == 1


async def test_a_signal_handled_again_after_its_execution_ended_stays_delivered(world: World) -> None:
    spec = {"timeline": ["wait"], "steps": {"wait": {"signal": {"name": "ready"}}}}
    execution_id = await started_execution(world, "orders-1", "orders", spec)
    signal = signal_body("ready-1", ready(), uid="uid-signal-1")
    await world.reconciler.signal_created(signal)
    assert (await world.engine.state_of(execution_id)).phase == ExecutionPhase.SUCCEEDED

    again = await world.reconciler.signal_created(signal)

    assert again.status["phase"] == "Delivered", again.status
    assert len(await received(world, execution_id)) == 1


async def test_a_signal_whose_status_has_a_phase_is_not_handled_again(world: World) -> None:
    await started_execution(world, "orders-1", "orders", WAITS)

    outcome = await world.reconciler.signal_created(signal_body("ready-1", ready(), status={"phase": "Refused"}))

    assert outcome.status == {} and outcome.event is None


async def test_a_signal_no_step_of_the_workflow_waits_for_is_refused_with_the_engine_s_reason(world: World) -> None:
    execution_id = await started_execution(world, "orders-1", "orders", WAITS)

    outcome = await world.reconciler.signal_created(signal_body("nope-1", ready(name="nope")))

    assert outcome.status["phase"] == "Refused"
    assert (
        "has no signal step for a signal named 'nope' (its signal steps wait for: ready)" in outcome.status["message"]
    )
    assert outcome.event is not None and outcome.event[:2] == ("Warning", "Refused")
    assert await received(world, execution_id) == []


async def test_a_signal_for_an_execution_that_is_not_in_the_namespace_is_refused_saying_so(world: World) -> None:
    outcome = await world.reconciler.signal_created(signal_body("ready-1", ready("elsewhere")))

    assert outcome.status["phase"] == "Refused"
    assert outcome.status["message"] == f"execution 'elsewhere' not found in namespace {NS}"
    assert world.api.gets == [("Execution", NS, "elsewhere")]


@pytest.mark.parametrize("reference", ["../../team-b/executions/orders-1", "Orders-1", "orders-1\n"])
async def test_a_signal_whose_execution_is_not_a_name_is_refused_naming_the_field_and_nothing_is_read(
    world: World, reference: str
) -> None:
    outcome = await world.reconciler.signal_created(signal_body("ready-1", ready(reference)))

    assert outcome.status["phase"] == "Refused"
    assert outcome.status["message"].startswith("spec.execution ")
    assert world.api.gets == []


async def test_a_signal_whose_sender_cannot_be_verified_is_refused_and_the_step_keeps_waiting(world: World) -> None:
    execution_id = await started_execution(world, "orders-1", "orders", WAITS)
    world.approvers.answer = "the sender cannot be verified: no MutatingAdmissionPolicy writes ..."

    outcome = await world.reconciler.signal_created(signal_body("ready-1", ready()))

    assert outcome.status["phase"] == "Refused"
    assert outcome.status["message"].startswith("the sender cannot be verified")
    assert (await world.engine.state_of(execution_id)).display_phase() == ExecutionPhase.WAITING_FOR_SIGNAL


async def test_a_signal_with_no_sender_stamped_is_refused_although_the_policy_is_installed(world: World) -> None:
    await started_execution(world, "orders-1", "orders", WAITS)
    spec = ready()
    del spec["sender"]

    outcome = await world.reconciler.signal_created(signal_body("ready-1", spec))

    assert outcome.status["phase"] == "Refused"
    assert "spec.sender is empty, so the admission policy did not stamp this Signal" in outcome.status["message"]


async def test_an_unreachable_policy_check_retries_the_signal_instead_of_deciding(world: World) -> None:
    await started_execution(world, "orders-1", "orders", WAITS)
    world.approvers.unreachable = True

    with pytest.raises(Retry, match="could not read the admission policies"):
        await world.reconciler.signal_created(signal_body("ready-1", ready()))


async def test_signal_data_over_the_payload_limit_is_refused_naming_the_limit(world: World) -> None:
    await started_execution(world, "orders-1", "orders", WAITS)
    world.reconciler.max_payload_bytes = 1000

    outcome = await world.reconciler.signal_created(signal_body("ready-1", ready(data="x" * 1000)))

    assert outcome.status["phase"] == "Refused"
    assert outcome.status["message"] == (
        "spec.data is 1002 bytes of JSON, over the 1000-byte payload limit (--max-payload-bytes)"
    )


async def test_a_signal_for_a_chain_that_continued_as_new_reaches_its_latest_run(world: World) -> None:
    loop = {
        "timeline": ["tick", "again"],
        "steps": {"tick": {"signal": {"name": "ready"}}, "again": {"continueAsNew": {"input": "{'n': 1}"}}},
    }
    relay = Relay(world.db, world.engine, clock=world.clock)
    await relay.start()
    first = await started_execution(world, "orders-1", "orders", loop)
    await world.reconciler.signal_created(signal_body("ready-1", ready(), uid="uid-signal-1"))
    await relay.idle()
    latest = await world.engine.latest_run(first)
    assert latest != first

    outcome = await world.reconciler.signal_created(signal_body("ready-2", ready(), uid="uid-signal-2"))

    assert outcome.status["phase"] == "Delivered" and outcome.status["runId"] == latest
    assert [e.request_id for e in await received(world, latest)] == ["uid-signal-2"]
    await relay.stop()
