"""The writes' connection (store/held.py): one, held across transactions, replaced when lost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError

from cerebelum_operator.engine import events as ev
from cerebelum_operator.engine.actions import Action, DeleteTask, LeaseTask
from cerebelum_operator.engine.rates import RateLimit
from cerebelum_operator.store import AppendRequest, ConcurrencyConflict, EventStore, StoreUnavailable, open_store
from cerebelum_operator.store.prepared import PreparedStatements
from cerebelum_operator.store.sql import SqlEventStore

from .helpers import Appender


@pytest.fixture
def sql_store(store: EventStore) -> SqlEventStore:
    assert isinstance(store, SqlEventStore)
    return store


@pytest.fixture
def checkouts(sql_store: SqlEventStore) -> Iterator[list[object]]:
    """Every connection checked out of the store's pool from now on."""
    seen: list[object] = []

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        seen.append(dbapi_connection)

    event.listen(sql_store._engine.pool, "checkout", on_checkout)
    yield seen
    event.remove(sql_store._engine.pool, "checkout", on_checkout)


def _step(appender: Appender, execution_id: str, *, expected_seq: int | None = None) -> AppendRequest:
    seq = appender.last_seq[execution_id] if expected_seq is None else expected_seq
    event_ = ev.StepCompleted(step="a", attempt=1, token="t", output=None)
    return AppendRequest(execution_id, seq, [ev.RecordedEvent(seq + 1, 3_000, event_)], [], Appender.summary())


def _last_seq(store: EventStore, execution_id: str) -> int:
    row = store.get_execution(execution_id)
    assert row is not None
    return row.last_seq


def test_appends_reuse_one_connection_without_a_pool_checkout(
    sql_store: SqlEventStore, appender: Appender, checkouts: list[object]
) -> None:
    for n in range(10):
        appender.start(f"e{n}")
        appender.append(f"e{n}", ev.StepCompleted(step="a", attempt=1, token="t", output=n))
    assert checkouts == [], "the writes ran on the held connection, not on one from the pool each"
    assert sql_store._writer.opened == 1
    assert _last_seq(sql_store, "e9") == 2


def test_a_batch_with_a_failing_request_still_isolates_it_on_the_held_connection(
    sql_store: SqlEventStore, appender: Appender, checkouts: list[object]
) -> None:
    for name in ("a", "b", "c"):
        appender.start(name)
    outcomes = sql_store.append_batch(
        [_step(appender, "a"), _step(appender, "b", expected_seq=7), _step(appender, "c")]
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ConcurrencyConflict)
    assert (_last_seq(sql_store, "a"), _last_seq(sql_store, "b"), _last_seq(sql_store, "c")) == (2, 1, 2)
    assert sql_store._writer.opened == 1, "a failed transaction rolls back; the connection stays"
    appender.last_seq.update(a=2, c=2)
    appender.append("a", ev.StepCompleted(step="a", attempt=2, token="t2", output=None))
    assert _last_seq(sql_store, "a") == 3


def test_a_statement_failing_in_the_database_rolls_back_and_keeps_the_connection(
    sql_store: SqlEventStore, appender: Appender
) -> None:
    """On PostgreSQL the error surfaces only when the pipeline carrying the COMMIT is synced."""
    appender.start("e1", actions=[appender.schedule("t1")])
    with pytest.raises(IntegrityError):  # a second task with the same token
        appender.append(
            "e1", ev.StepCompleted(step="a", attempt=1, token="t", output=None), actions=[appender.schedule("t1")]
        )
    assert _last_seq(sql_store, "e1") == 1
    appender.last_seq["e1"] = 1
    appender.append("e1", ev.StepCompleted(step="a", attempt=1, token="t", output=None))
    assert _last_seq(sql_store, "e1") == 2
    assert sql_store._writer.opened == 1


def _lose_the_write_connection(store: SqlEventStore) -> None:
    conn = store._writer._conn
    assert conn is not None
    driver: Any = conn.connection.driver_connection
    if store._engine.dialect.name == "sqlite":
        driver.close()
        return
    with store._read() as other:  # PostgreSQL ends the backend, as a restart would
        assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": driver.info.backend_pid}).scalar()


def test_a_lost_write_connection_fails_one_append_as_unavailable_and_the_next_append_gets_a_new_one(
    sql_store: SqlEventStore, appender: Appender
) -> None:
    appender.start("before")
    assert sql_store._writer.opened == 1
    _lose_the_write_connection(sql_store)
    with pytest.raises(StoreUnavailable):
        appender.start("lost")
    appender.start("after")
    assert sql_store._writer.opened == 2
    assert sql_store.get_execution("lost") is None
    assert _last_seq(sql_store, "after") == 1


def test_a_write_while_the_held_connection_is_busy_takes_one_from_the_pool(
    sql_store: SqlEventStore, appender: Appender, checkouts: list[object]
) -> None:
    with sql_store._writer._lock:  # as another thread's write would hold it
        appender.start("pooled")
    assert len(checkouts) == 1
    appender.start("held")
    assert len(checkouts) == 1
    assert _last_seq(sql_store, "pooled") == _last_seq(sql_store, "held") == 1


def test_an_in_memory_sqlite_store_writes_and_reads_on_its_one_connection() -> None:
    store = open_store("sqlite://")
    try:
        store.migrate()
        appender = Appender(store)
        appender.start("one")
        appender.append("one", ev.StepCompleted(step="a", attempt=1, token="t", output=1))
        assert _last_seq(store, "one") == 2
        assert len(store.load_history("one")) == 2
    finally:
        store.close()


def _next_step(appender: Appender, execution_id: str, done: str, following: str) -> AppendRequest:
    """A step's completion as eager dispatch writes it: its task deleted, the next one scheduled and leased."""
    seq = appender.last_seq[execution_id]
    completed = ev.StepCompleted(step="a", attempt=1, token=done, output=None)
    actions: list[Action] = [
        DeleteTask(done),
        appender.schedule(following, task_queue="limited"),
        LeaseTask.now(following, "w1", lease_ms=10_000, timeout_ms=30_000, now_ms=3_000, last_progress=None, run=1),
    ]
    return AppendRequest(execution_id, seq, [ev.RecordedEvent(seq + 1, 3_000, completed)], actions, Appender.summary())


def test_a_batch_s_task_actions_run_once_per_kind_for_every_append_and_leave_what_each_alone_would(
    sql_store: SqlEventStore, appender: Appender, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql_store.put_task_queue("limited", paused=False, note="", rate_limit=RateLimit(100, 60_000), now_ms=1_000)
    names = [f"e{n}" for n in range(12)]
    for name in names:
        appender.start(name, actions=[appender.schedule(f"{name}/1")])
    calls: list[int] = []
    executemany = PreparedStatements.executemany

    def counted(self: PreparedStatements, conn: Any, statement: Any, rows: Any) -> None:
        calls.append(len(rows))
        executemany(self, conn, statement, rows)

    monkeypatch.setattr(PreparedStatements, "executemany", counted)
    outcomes = sql_store.append_batch([_next_step(appender, name, f"{name}/1", f"{name}/2") for name in names])

    assert outcomes == [None] * len(names)
    # The deletes, the leased inserts, the starts and the events: one call each for the twelve appends
    # (on SQLite only the starts: the others are statements of many rows, store/multirow.py).
    assert sorted(calls) == ([12] if sql_store._multirow is not None else [12, 12, 12, 12]), calls
    tasks = {row.token: row for row in sql_store.load_tasks()}
    assert sorted(tasks) == sorted(f"{name}/2" for name in names)
    assert {(row.state, row.worker_id) for row in tasks.values()} == {("leased", "w1")}
    started = {row.token for row in sql_store.live_task_starts(3_000)}
    assert started == set(tasks), "each lease of the limited queue recorded its start"
