"""Shards in the store (migration 9): placement, reads of some shards, and fencing of a stale owner."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, text

from cerebelum_operator.engine import events as ev
from cerebelum_operator.engine.actions import SendMessage, StartTimer
from cerebelum_operator.model.shards import DEFAULT_SHARDS, shard_of
from cerebelum_operator.store import (
    AppendRequest,
    EventStore,
    NewExecution,
    ShardNotOwned,
    open_store,
)
from cerebelum_operator.store.migrations import MIGRATIONS, apply_migrations, latest_version
from cerebelum_operator.store.versions import v009_shards

from .helpers import Appender


def _ids_in_distinct_shards(count: int, *, avoid: frozenset[int] = frozenset()) -> list[str]:
    """Ids whose shards differ from each other, from 0 and from ``avoid``: a misplacement shows."""
    ids: list[str] = []
    taken = {0, *avoid}
    n = 0
    while len(ids) < count:
        candidate = f"exec-{n}"
        shard = shard_of(candidate, shards=DEFAULT_SHARDS)
        if shard not in taken:
            ids.append(candidate)
            taken.add(shard)
        n += 1
    return ids


def _in(execution_id: str) -> int:
    return shard_of(execution_id, shards=DEFAULT_SHARDS)


def test_the_migrations_hash_is_the_one_the_engine_places_with() -> None:
    assert v009_shards.SHARDS == DEFAULT_SHARDS
    for n in range(500):
        assert v009_shards._shard_of(f"id-{n}") == shard_of(f"id-{n}", shards=DEFAULT_SHARDS)


def test_migration_9_places_existing_executions_by_their_chains_first_run(store_url: str) -> None:
    first, other = _ids_in_distinct_shards(2)
    run_2 = f"{first}:run-2"
    assert _in(run_2) != _in(first)  # else the test could not tell the chain's placement from the id's
    old = open_store(store_url)
    try:
        assert apply_migrations(old._write, old._lock_migrations, migrations=MIGRATIONS[:8]) == 8  # type: ignore[attr-defined]
        appender = Appender(old)
        appender.start(first)
        appender.start(other)
        old.append(
            run_2,
            expected_seq=0,
            events=[ev.RecordedEvent(1, 1_000, ev.ExecutionStarted(workflow="orders", input=None, spec_hash="h1"))],
            actions=[],
            summary=Appender.summary(),
            new_execution=NewExecution(workflow="orders", spec={}, spec_hash="h1", input=None, chain=(first, 2)),
        )
    finally:
        old.close()
    upgraded = open_store(store_url)
    try:
        assert upgraded.migrate() == latest_version()  # 9 and every later one
        assert upgraded.shard_count() == DEFAULT_SHARDS
        assert upgraded.shard_of_execution(first) == _in(first)
        assert upgraded.shard_of_execution(other) == _in(other)
        assert upgraded.shard_of_execution(run_2) == _in(first)
        assert upgraded.shard_of_execution("nobody") is None
        owners = upgraded.list_shard_owners()
        assert [o.shard for o in owners] == list(range(DEFAULT_SHARDS))
        assert {(o.epoch, o.owner) for o in owners} == {(0, None)}
    finally:
        upgraded.close()


def test_a_new_execution_goes_to_the_shard_it_is_given_else_to_its_ids(store: EventStore, appender: Appender) -> None:
    parent, child = _ids_in_distinct_shards(2)
    appender.start(parent)
    appender.start(child, shard=_in(parent))
    assert store.shard_of_execution(parent) == _in(parent)
    assert store.shard_of_execution(child) == _in(parent)
    with pytest.raises(ValueError, match=f"shard {DEFAULT_SHARDS} of execution 'far' is not one of this store's"):
        appender.start("far", shard=DEFAULT_SHARDS)
    assert store.get_execution("far") is None


def test_reads_of_some_shards_see_only_their_executions(store: EventStore, appender: Appender) -> None:
    mine, theirs = _ids_in_distinct_shards(2)
    for execution_id in (mine, theirs):
        appender.start(
            execution_id,
            actions=[
                appender.schedule(f"{execution_id}/t"),
                StartTimer(f"{execution_id}/timer", 5_000),
                SendMessage(f"{execution_id}/m", "start", "target", 1, {}),
            ],
        )
    shards = [_in(mine)]
    assert store.active_execution_ids(shards=shards) == [mine]
    assert sorted(store.active_execution_ids()) == sorted([mine, theirs])
    assert [t.execution_id for t in store.load_tasks(shards=shards)] == [mine]
    assert [t.execution_id for t in store.load_tasks(state="queued", shards=shards)] == [mine]
    assert len(store.load_tasks()) == 2
    assert [t.execution_id for t in store.due_timers(until_ms=9_000, limit=10, shards=shards)] == [mine]
    assert len(store.due_timers(until_ms=9_000, limit=10)) == 2
    assert [m.execution_id for m in store.pending_messages(limit=10, shards=shards)] == [mine]
    assert store.active_execution_ids(shards=[]) == []


def test_a_replica_whose_shard_was_taken_cannot_write_to_it_any_more(store: EventStore, store_url: str) -> None:
    kept, lost = _ids_in_distinct_shards(2)
    old_owner = Appender(store)
    old_owner.start(kept)
    old_owner.start(lost)
    epochs = {
        _in(kept): store.take_shard(_in(kept), owner="a", address="10.0.0.1:7450", now_ms=1),
        _in(lost): store.take_shard(_in(lost), owner="a", address="10.0.0.1:7450", now_ms=1),
    }
    store.set_fence(epochs)
    old_owner.append(lost, ev.StepStarted(step="a", attempt=1, token="t1", worker_id="w"))  # still its own
    new_owner = open_store(store_url)
    try:
        new_owner.migrate()
        assert new_owner.take_shard(_in(lost), owner="b", address=None, now_ms=2) == epochs[_in(lost)] + 1
        before = store.load_history(lost)
        with pytest.raises(ShardNotOwned, match=f"execution '{lost}' is in shard {_in(lost)}, which this replica"):
            old_owner.append(lost, ev.StepStarted(step="a", attempt=2, token="t2", worker_id="w"))
        assert store.load_history(lost) == before
        old_owner.append(
            kept, ev.StepStarted(step="a", attempt=1, token="t3", worker_id="w")
        )  # its other shard is unaffected
        with pytest.raises(ShardNotOwned):  # nor can it create executions where it does not own
            old_owner.start(lost + "-child", shard=_in(lost))
        assert store.get_execution(lost + "-child") is None
        owner = {o.shard: o for o in new_owner.list_shard_owners()}[_in(lost)]
        assert (owner.owner, owner.address, owner.taken_at_ms) == ("b", None, 2)
    finally:
        new_owner.close()


def test_a_group_commit_with_one_stale_shard_lands_the_rest(store: EventStore, appender: Appender) -> None:
    kept, lost = _ids_in_distinct_shards(2)
    appender.start(kept)
    appender.start(lost)
    store.set_fence({_in(kept): store.take_shard(_in(kept), owner="a", address=None, now_ms=1)})

    def step(execution_id: str) -> AppendRequest:
        seq = appender.last_seq[execution_id]
        event = ev.RecordedEvent(
            seq + 1, 3_000, ev.StepStarted(step="a", attempt=1, token=f"{execution_id}/t", worker_id="w")
        )
        return AppendRequest(execution_id, seq, [event], [], Appender.summary(at_ms=3_000))

    outcomes = store.append_batch([step(kept), step(lost)])
    assert outcomes[0] is None and isinstance(outcomes[1], ShardNotOwned)
    assert [r.seq for r in store.load_history(kept)] == [1, 2]
    assert [r.seq for r in store.load_history(lost)] == [1]


def test_without_a_fence_a_store_writes_every_shard_and_an_empty_fence_none(
    store: EventStore, appender: Appender
) -> None:
    (execution_id,) = _ids_in_distinct_shards(1)
    appender.start(execution_id)
    store.set_fence({})
    with pytest.raises(ShardNotOwned):
        appender.append(execution_id, ev.StepStarted(step="a", attempt=1, token="t1", worker_id="w"))
    store.set_fence(None)
    appender.append(execution_id, ev.StepStarted(step="a", attempt=1, token="t1", worker_id="w"))
    assert len(store.load_history(execution_id)) == 2


def test_releasing_a_shard_clears_its_owner_only_at_the_epoch_released(store: EventStore) -> None:
    first = store.take_shard(3, owner="a", address=None, now_ms=1)
    second = store.take_shard(3, owner="b", address="b:1", now_ms=2)
    assert not store.release_shard(3, epoch=first)  # a stale release leaves the new owner alone
    assert {o.shard: o.owner for o in store.list_shard_owners()}[3] == "b"
    assert store.release_shard(3, epoch=second)
    row = {o.shard: o for o in store.list_shard_owners()}[3]
    assert (row.owner, row.epoch) == (None, second)
    with pytest.raises(ValueError, match=f"shard {DEFAULT_SHARDS} is not one of this store's {DEFAULT_SHARDS}"):
        store.take_shard(DEFAULT_SHARDS, owner="a", address=None, now_ms=3)


@pytest.mark.postgres
def test_taking_a_shard_waits_for_the_old_owners_commit_in_flight(postgres_database_url: str) -> None:
    """The fence holds its epochs shared until commit: a take queues behind it, so nothing lands after."""
    old = open_store(postgres_database_url)
    new = open_store(postgres_database_url)
    watcher = create_engine(postgres_database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        old.migrate()
        new.migrate()
        (execution_id,) = _ids_in_distinct_shards(1)
        shard = _in(execution_id)
        appender = Appender(old)
        appender.start(execution_id)
        old.set_fence({shard: old.take_shard(shard, owner="a", address=None, now_ms=1)})
        taken: list[int] = []
        with old._write() as conn:  # type: ignore[attr-defined]  # an append's transaction, held open
            assert old._standing_shards(conn) == {shard}  # type: ignore[attr-defined]
            taker = threading.Thread(
                target=lambda: taken.append(new.take_shard(shard, owner="b", address=None, now_ms=2))
            )
            taker.start()
            _wait_for(lambda: _waiting_on_a_lock(watcher), what="the take to wait for the old owner's commit")
            assert not taken
        taker.join(timeout=60)
        assert taken and taken[0] == 2
        with pytest.raises(ShardNotOwned):
            appender.append(execution_id, ev.StepStarted(step="a", attempt=1, token="t1", worker_id="w"))
    finally:
        watcher.dispose()
        old.close()
        new.close()


def _waiting_on_a_lock(engine: object) -> bool:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE shard_owners%'"
            )
        ).scalar()
    return bool(waiting)


def _wait_for(condition: Callable[[], bool], *, what: str, bound_s: float = 60.0) -> None:
    event = threading.Event()
    for _ in range(int(bound_s / 0.05)):
        if condition():
            return
        event.wait(0.05)  # polling a database condition, not synchronising on time
    raise AssertionError(f"timed out waiting for {what}")


def test_a_fenced_store_reads_the_work_of_its_own_shards_only(store: EventStore, appender: Appender) -> None:
    mine, theirs = _ids_in_distinct_shards(2)
    for execution_id in (mine, theirs):
        appender.start(
            execution_id, actions=[appender.schedule(f"{execution_id}/t"), StartTimer(f"{execution_id}/timer", 5_000)]
        )
    store.set_fence({_in(mine): store.take_shard(_in(mine), owner="a", address=None, now_ms=1)})
    assert [t.execution_id for t in store.load_tasks()] == [mine]
    assert [t.execution_id for t in store.due_timers(until_ms=9_000, limit=10)] == [mine]
    assert store.active_execution_ids() == [mine]
    assert [t.execution_id for t in store.load_tasks(shards=[_in(theirs)])] == [theirs]  # asked for: read
    assert store.get_execution(theirs) is not None  # reads of executions are not work: every shard


def test_a_fenced_store_lists_the_held_executions_of_its_own_shards_only(store: EventStore, appender: Appender) -> None:
    """A workflow's resume on an engine of a split resumes its own: no read per execution to find them."""
    mine, theirs = _ids_in_distinct_shards(2)
    for execution_id in (mine, theirs):
        appender.start(execution_id, phase="Paused")
    assert store.held_executions("orders", after_id="", limit=10) == sorted([mine, theirs])
    store.set_fence({_in(mine): store.take_shard(_in(mine), owner="a", address=None, now_ms=1)})
    assert store.held_executions("orders", after_id="", limit=10) == [mine]
