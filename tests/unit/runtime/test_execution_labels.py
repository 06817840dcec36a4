"""Labels through the engine: checked and stored at start, carried along a continue-as-new chain, not
inherited by children, and read back with the paged listing and its counts."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model import LabelsInvalid
from cerebelum_operator.runtime import EngineService, FakeClock, Relay
from cerebelum_operator.store import ExecutionQuery

SPEC: dict[str, Any] = {
    "timeline": ["run_child"],
    "steps": {"run_child": {"child": {"workflow": "waiter"}}},
}
WAITER: dict[str, Any] = {"timeline": ["wait"], "steps": {"wait": {"signal": {"name": "go"}}}}
LOOP: dict[str, Any] = {
    "timeline": ["tick", "again"],
    "steps": {"tick": {"signal": {"name": "tick"}}, "again": {"continueAsNew": {"input": "{'n': input.n + 1}"}}},
}


@pytest.fixture
async def relay(engine: EngineService, clock: FakeClock) -> Relay:
    await engine.put_workflow("waiter", WAITER)
    await engine.put_workflow("loop", LOOP)
    relay = Relay(engine.db, engine, clock=clock)
    await relay.start()
    return relay


async def test_labels_given_at_start_are_stored_and_listed_by(engine: EngineService, relay: Relay) -> None:
    await engine.start("waiter", None, execution_id="a", labels={"team": "billing"})
    await engine.signal_with_start("waiter", None, execution_id="b", signal=cmd.Signal("go"), labels={"team": "ops"})
    await engine.start("waiter", None, execution_id="c")

    assert await engine.labels_of(["a", "b", "c"]) == {"a": {"team": "billing"}, "b": {"team": "ops"}}
    page = await engine.list_executions_page(ExecutionQuery(labels=(("team", "billing"),)))
    assert [row.execution_id for row in page.rows] == ["a"] and page.next is None
    assert await engine.count_executions(ExecutionQuery(workflow="waiter", phases=("Succeeded",))) == {
        "WaitingForSignal": 2,
        "Succeeded": 1,
    }


async def test_a_bad_label_refuses_the_start_and_starts_nothing(engine: EngineService, relay: Relay) -> None:
    with pytest.raises(LabelsInvalid, match="label 'team'='no way'"):
        await engine.start("waiter", None, execution_id="a", labels={"team": "no way"})
    with pytest.raises(LabelsInvalid, match="label '-x'"):
        await engine.signal_with_start("waiter", None, execution_id="b", signal=cmd.Signal("go"), labels={"-x": ""})
    assert await engine.get_execution("a") is None and await engine.get_execution("b") is None


async def test_a_repeated_start_finds_the_first_one_and_keeps_its_labels(engine: EngineService, relay: Relay) -> None:
    await engine.start("waiter", None, execution_id="a", labels={"team": "billing"})
    await engine.start("waiter", None, execution_id="a", labels={"team": "ops"})
    assert await engine.labels_of(["a"]) == {"a": {"team": "billing"}}


async def test_every_run_of_a_continue_as_new_chain_has_the_first_runs_labels(
    engine: EngineService, relay: Relay
) -> None:
    await engine.start("loop", {"n": 0}, execution_id="l", labels={"job": "nightly"})
    for n in range(2):
        await engine.signal(await engine.latest_run("l"), cmd.Signal("tick", n))
        await relay.idle()

    assert await engine.latest_run("l") == "l:run-3"
    assert await engine.labels_of(["l", "l:run-2", "l:run-3"]) == {
        run: {"job": "nightly"} for run in ("l", "l:run-2", "l:run-3")
    }


async def test_a_child_does_not_inherit_its_parents_labels(engine: EngineService, relay: Relay) -> None:
    await engine.start("w", None, execution_id="p", labels={"team": "billing"})
    await relay.idle()
    [link] = (await engine.state_of("p")).children
    assert await engine.get_execution(link.child_id) is not None
    assert await engine.labels_of(["p", link.child_id]) == {"p": {"team": "billing"}}
