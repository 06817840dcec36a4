"""The outbox relay: children started and cancelled, parents told, next runs started, across restarts."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model.shards import shard_of
from cerebelum_operator.runtime import EngineService, FakeClock, Relay

SPEC: dict[str, Any] = {
    "timeline": ["run_child", "after"],
    "steps": {
        "run_child": {"child": {"workflow": "greeter", "input": "{'name': input.who}"}},
        "after": {"signal": {"name": "done"}},
    },
    "output": "steps.run_child",
}
GREETER: dict[str, Any] = {
    "timeline": ["wait"],
    "steps": {"wait": {"signal": {"name": "go"}}},
    "output": "{'greeting': 'hello ' + input.name, 'by': steps.wait.data}",
}
LOOP: dict[str, Any] = {
    "timeline": ["tick", "again"],
    "steps": {"tick": {"signal": {"name": "tick"}}, "again": {"continueAsNew": {"input": "{'n': input.n + 1}"}}},
}


@pytest.fixture
async def relay(engine: EngineService, clock: FakeClock) -> Relay:
    await engine.put_workflow("greeter", GREETER)
    await engine.put_workflow("loop", LOOP)
    relay = Relay(engine.db, engine, clock=clock)
    await relay.start()
    return relay


async def test_a_child_runs_and_its_output_becomes_the_parents_step_result(engine: EngineService, relay: Relay) -> None:
    await engine.start("w", {"who": "ada"}, execution_id="p")
    await relay.idle()
    parent = await engine.state_of("p")
    [link] = parent.children
    child = await engine.state_of(link.child_id)
    assert (child.parent_id, child.parent_step, child.input) == ("p", "run_child", {"name": "ada"})

    await engine.signal(link.child_id, cmd.Signal("go", "bob"))
    await relay.idle()

    parent = await engine.state_of("p")
    assert parent.results["run_child"] == {"greeting": "hello ada", "by": "bob"}
    assert parent.children[0].phase == "Succeeded"
    assert await engine.db.run(engine.db.store.pending_messages, limit=10) == []


async def test_cancelling_the_parent_cancels_the_child(engine: EngineService, relay: Relay) -> None:
    await engine.start("w", {"who": "ada"}, execution_id="p")
    await relay.idle()
    child_id = (await engine.state_of("p")).children[0].child_id

    await engine.handle("p", cmd.Cancel("stop"))
    await relay.idle()

    child = await engine.state_of(child_id)
    assert child.phase == ExecutionPhase.CANCELLED
    assert child.error == "its parent execution 'p' ended"


async def test_a_child_of_a_workflow_that_does_not_exist_fails_the_parents_step(
    engine: EngineService, relay: Relay
) -> None:
    await engine.put_workflow("w", {**SPEC, "steps": {**SPEC["steps"], "run_child": {"child": {"workflow": "nope"}}}})
    await engine.start("w", {"who": "ada"}, execution_id="p")
    await relay.idle()

    parent = await engine.state_of("p")
    assert parent.phase == ExecutionPhase.FAILED
    assert "the child could not start: workflow 'nope' not found" in (parent.error or "")


async def test_messages_left_in_the_outbox_by_a_crash_are_delivered_by_the_next_relay(
    engine: EngineService, clock: FakeClock
) -> None:
    await engine.put_workflow("greeter", GREETER)
    await engine.start("w", {"who": "ada"}, execution_id="p")  # no relay: as if it died at the commit
    pending = await engine.db.run(engine.db.store.pending_messages, limit=10)
    assert [m.kind for m in pending] == ["start"]

    relay = Relay(engine.db, engine, clock=clock)
    await relay.start()
    await relay.idle()

    child_id = (await engine.state_of("p")).children[0].child_id
    assert (await engine.state_of(child_id)).parent_id == "p"
    assert await engine.db.run(engine.db.store.pending_messages, limit=10) == []


async def test_a_start_relayed_twice_starts_the_child_once(engine: EngineService, clock: FakeClock) -> None:
    await engine.put_workflow("greeter", GREETER)
    await engine.start("w", {"who": "ada"}, execution_id="p")
    [message] = await engine.db.run(engine.db.store.pending_messages, limit=10)
    relay = Relay(engine.db, engine, clock=clock)
    for _ in range(2):  # as if the first delivery's process died before the message was deleted
        assert await relay._deliver(message)
    child_id = (await engine.state_of("p")).children[0].child_id
    rows = await engine.list_executions()
    assert sorted(r.execution_id for r in rows) == sorted(["p", child_id])


async def test_continue_as_new_starts_the_next_run_and_the_chain_follows_to_it(
    engine: EngineService, relay: Relay
) -> None:
    await engine.start("loop", {"n": 0}, execution_id="l")
    for n in range(3):
        latest = await engine.latest_run("l")
        await engine.signal(latest, cmd.Signal("tick", n))
        await relay.idle()

    latest = await engine.latest_run("l")
    assert latest == "l:run-4"
    state = await engine.state_of(latest)
    assert (state.input, state.run, state.first_run_id, state.continued_from) == ({"n": 3}, 4, "l", "l:run-3")
    first = await engine.state_of("l")
    assert (first.phase, first.continued_as) == (ExecutionPhase.CONTINUED_AS_NEW, "l:run-2")
    assert await engine.latest_run("l:run-2") == "l:run-4"


async def test_signal_with_start_starts_and_delivers_in_one_commit_then_only_delivers(
    engine: EngineService, relay: Relay
) -> None:
    row = await engine.signal_with_start("greeter", {"name": "ada"}, execution_id="g", signal=cmd.Signal("go", 1))
    assert row.phase == ExecutionPhase.SUCCEEDED.value
    history = await engine.load_history("g")
    assert [r.event.kind for r in history][:3] == ["ExecutionStarted", "SignalWaitStarted", "SignalReceived"]

    await engine.put_workflow("two", {"timeline": ["a", "b"], "steps": {n: {"signal": {"name": "go"}} for n in "ab"}})
    await engine.signal_with_start("two", None, execution_id="t", signal=cmd.Signal("go", 1))
    row = await engine.signal_with_start("two", None, execution_id="t", signal=cmd.Signal("go", 2))
    assert row.phase == ExecutionPhase.SUCCEEDED.value
    assert [r["data"] for r in (await engine.state_of("t")).results.values()] == [1, 2]


async def test_signal_with_start_refused_starts_nothing(engine: EngineService, relay: Relay) -> None:
    from cerebelum_operator.engine import CommandRejected

    with pytest.raises(CommandRejected, match="no signal step for a signal named 'nope'"):
        await engine.signal_with_start("greeter", {"name": "a"}, execution_id="g", signal=cmd.Signal("nope"))
    assert await engine.get_execution("g") is None


async def test_signals_no_run_took_are_the_next_runs_and_a_resent_one_stays_a_duplicate(
    engine: EngineService, relay: Relay
) -> None:
    await engine.put_workflow(
        "gated",
        {
            "timeline": ["gate", "tick", "again"],
            "steps": {
                "gate": {"signal": {"name": "gate"}},
                "tick": {"signal": {"name": "tick"}},
                "again": {"continueAsNew": {}},
            },
        },
    )
    await engine.start("gated", None, execution_id="g")
    for n in range(3):  # queued: the run waits at its gate
        await engine.signal("g", cmd.Signal("tick", n, sender="ops", request_id=f"r{n}"))
    assert await engine.signal("g", cmd.Signal("gate")) == "g"
    await relay.idle()

    first, second = await engine.state_of("g"), await engine.state_of("g:run-2")
    assert first.results["tick"]["data"] == 0
    assert [(s.name, s.data, s.sender) for s in second.signals] == [("tick", 1, "ops"), ("tick", 2, "ops")]

    events = len(await engine.load_history("g:run-2"))
    assert await engine.signal("g", cmd.Signal("tick", 1, request_id="r1")) == "g:run-2"  # resent: a duplicate
    assert len(await engine.load_history("g:run-2")) == events
    await engine.signal("g", cmd.Signal("gate"))
    await relay.idle()
    assert (await engine.state_of("g:run-2")).results["tick"]["data"] == 1
    assert [s.data for s in (await engine.state_of("g:run-3")).signals] == [2]


async def test_a_child_and_a_next_run_are_placed_in_the_shard_of_their_parent_and_chain(
    engine: EngineService, relay: Relay
) -> None:
    store = engine.db.store
    count = store.shard_count()
    parent = next(f"p{n}" for n in range(1000) if shard_of(f"p{n}", shards=count) != 0)
    await engine.start("w", {"who": "ada"}, execution_id=parent)
    await relay.idle()
    child_id = (await engine.state_of(parent)).children[0].child_id
    assert shard_of(child_id, shards=count) != shard_of(parent, shards=count)  # its own id would place it elsewhere
    assert await engine.db.run(store.shard_of_execution, child_id) == shard_of(parent, shards=count)

    first = next(f"l{n}" for n in range(1000) if shard_of(f"l{n}", shards=count) != 0)
    await engine.start("loop", {"n": 0}, execution_id=first)
    await engine.signal(first, cmd.Signal("tick", None))
    await relay.idle()
    following = await engine.latest_run(first)
    assert shard_of(following, shards=count) != shard_of(first, shards=count)
    assert await engine.db.run(store.shard_of_execution, following) == shard_of(first, shards=count)
