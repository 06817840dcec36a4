"""Two engines on one store, each owning some shards: what each does, and a shard changing hands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model.shards import shard_of
from cerebelum_operator.runtime import Database, Dispatcher, EngineService, FakeClock, Relay, ShardHost, TimerService
from cerebelum_operator.store import ShardNotOwned, open_store
from tests.support.waiting import eventually

SLEEPY: dict[str, Any] = {
    "timeline": ["nap", "work"],
    "steps": {"nap": {"timer": {"duration": "30s"}}, "work": {}},
}
WORK: dict[str, Any] = {"timeline": ["work"], "steps": {"work": {}}}


@dataclass
class Replica:
    engine: EngineService
    dispatcher: Dispatcher
    timers: TimerService
    relay: Relay
    host: ShardHost

    async def poll(self) -> str | None:
        granted = await self.dispatcher.poll(worker_id="w", task_queue="default", steps=["work"], wait_ms=0)
        return None if granted is None else granted.execution_id


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[tuple[Replica, Replica, FakeClock]]:
    clock = FakeClock()
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    built: list[Replica] = []
    for name in ("a", "b"):
        store = open_store(url)
        store.migrate()
        db = Database(store)
        engine = EngineService(db, clock=clock)
        dispatcher = Dispatcher(db, engine, clock=clock)
        timers = TimerService(db, engine, clock=clock)
        relay = Relay(db, engine, clock=clock)
        host = ShardHost(db, engine, dispatcher, timers, relay, clock=clock, owner=name, address=f"{name}:7450")
        await dispatcher.start()
        await timers.start()
        await relay.start()
        built.append(Replica(engine, dispatcher, timers, relay, host))
    a, b = built
    await a.engine.put_workflow("sleepy", SLEEPY)
    await a.engine.put_workflow("work", WORK)
    try:
        yield a, b, clock
    finally:
        for replica in built:
            await replica.timers.stop()
            await replica.dispatcher.stop()
            await replica.relay.stop()
            replica.engine.db.close()


def _id_in(shard: int, prefix: str, count: int) -> str:
    return next(f"{prefix}{n}" for n in range(10_000) if shard_of(f"{prefix}{n}", shards=count) == shard)


async def test_a_shard_handed_over_is_dispatched_and_woken_by_its_new_owner_only(
    replicas: tuple[Replica, Replica, FakeClock],
) -> None:
    a, b, clock = replicas
    count = a.engine.db.store.shard_count()
    moving, staying = 3, 5
    await a.host.take(range(count))
    sleeper, worker_task, kept = _id_in(moving, "s", count), _id_in(moving, "t", count), _id_in(staying, "k", count)
    await a.engine.start("sleepy", None, execution_id=sleeper)
    await a.engine.start("work", None, execution_id=worker_task)
    with pytest.raises(ShardNotOwned):  # b owns nothing yet: its writes are refused
        await b.engine.start("work", None, execution_id=_id_in(moving, "x", count))

    await a.host.hand_over([moving])
    await b.host.take([moving])

    assert dict(b.host.owned).keys() == {moving}
    assert moving not in a.host.owned
    assert await a.poll() is None  # a forgot the shard's queued task
    assert await b.poll() == worker_task  # b loaded it when it took the shard
    with pytest.raises(ShardNotOwned):  # a's writes to the shard it handed over are refused
        await a.engine.handle(sleeper, cmd.Cancel("from the old owner"))
    await a.engine.start("work", None, execution_id=kept)  # a's other shards go on as before
    assert await a.poll() == kept

    await clock.wait_for_sleepers(4)  # both timer loops and both promote loops asleep on the clock
    await clock.advance(30)
    await eventually(lambda: b.timers.fired >= 1, what="b to fire the sleeper's timer")
    await eventually(lambda: b.poll(), what="the sleeper's next step to be dispatched by b")
    row = await b.engine.get_execution(sleeper)
    assert row is not None and row.current_steps == ["work"]
    await eventually(lambda: a.timers.held == 0, what="a to let go of the timer it held for the shard")
    assert a.timers.fired == 0


async def test_a_replica_taking_a_shard_back_sees_what_the_other_did_with_it(
    replicas: tuple[Replica, Replica, FakeClock],
) -> None:
    a, b, _ = replicas
    count = a.engine.db.store.shard_count()
    await a.host.take(range(count))
    execution_id = _id_in(7, "e", count)
    await a.engine.start("work", None, execution_id=execution_id)
    assert (await a.engine.state_of(execution_id)).last_seq > 0  # cached in a

    await a.host.hand_over([7])
    await b.host.take([7])
    await b.engine.handle(execution_id, cmd.Cancel("moved on by b"))
    await b.host.hand_over([7])
    await a.host.take([7])

    state = await a.engine.state_of(execution_id)
    assert state.phase.terminal and state.error is not None and "moved on by b" in state.error
    owners = {row.shard: row for row in await a.engine.db.run(a.engine.db.store.list_shard_owners)}
    assert (owners[7].owner, owners[7].epoch) == ("a", 3)  # taken by a, by b, then by a again


PARENT: dict[str, Any] = {"timeline": ["kid"], "steps": {"kid": {"child": {"workflow": "work"}}}}


async def test_a_message_whose_senders_shard_moved_is_left_to_the_new_owner(
    replicas: tuple[Replica, Replica, FakeClock],
) -> None:
    a, b, clock = replicas
    count = a.engine.db.store.shard_count()
    await a.engine.put_workflow("parent", PARENT)
    await a.host.take(range(count))
    await a.relay.stop()  # the start of the child stays in the outbox, undelivered
    parent = _id_in(9, "p", count)
    await a.engine.start("parent", None, execution_id=parent)
    [message] = await a.engine.db.run(a.engine.db.store.pending_messages, limit=10)

    await a.host.hand_over([9])
    late = Relay(a.engine.db, a.engine, clock=clock)  # a relay of a that still holds the message
    late._enqueue(message)
    await asyncio.wait_for(late.idle(), 30)  # it lets go instead of retrying for ever
    assert await a.engine.db.run(a.engine.db.store.pending_messages, limit=10, shards=[9]) == [message]  # kept

    await b.host.take([9])  # the new owner relays it from the outbox
    await b.relay.idle()
    child = (await b.engine.state_of(parent)).children[0].child_id
    assert (await b.engine.state_of(child)).parent_id == parent


async def test_a_shard_whose_lease_was_lost_is_dropped_at_once_and_taken_over_without_a_release(
    replicas: tuple[Replica, Replica, FakeClock],
) -> None:
    a, b, _ = replicas
    count = a.engine.db.store.shard_count()
    lost, kept = 6, 8
    await a.host.take([lost, kept])
    queued, other = _id_in(lost, "q", count), _id_in(kept, "o", count)
    await a.engine.start("work", None, execution_id=queued)
    await a.engine.start("work", None, execution_id=other)

    await a.host.drop([lost])  # the Lease ran out: nothing is released, the fence narrows at once

    assert dict(a.host.owned).keys() == {kept}
    with pytest.raises(ShardNotOwned):  # its writes to the lost shard are refused at once
        await a.engine.handle(queued, cmd.Cancel("from the replica that lost the shard"))
    await b.host.take([lost])  # no release was written: the epoch goes up all the same
    assert await b.poll() == queued
    assert await a.poll() == other, "a dropped only the lost shard's task"
    assert await a.poll() is None


async def test_a_pinned_start_goes_to_its_ids_shard_or_is_refused_while_an_unpinned_one_is_placed_in_an_owned_shard(
    replicas: tuple[Replica, Replica, FakeClock],
) -> None:
    a, _, _ = replicas
    count = a.engine.db.store.shard_count()
    await a.host.take([3])
    elsewhere = _id_in(5, "p", count)
    assert not a.engine.owns_id(elsewhere) and a.engine.owns_id(_id_in(3, "p", count))
    with pytest.raises(ShardNotOwned):  # an Execution object is routed by its uid: never placed elsewhere
        await a.engine.start("work", None, execution_id=elsewhere, pinned=True)
    assert await a.engine.get_execution(elsewhere) is None
    await a.engine.start("work", None, execution_id=elsewhere)  # a schedule's fire, say: placed here
    assert await a.engine.shard_of_execution(elsewhere) == 3
