"""A group commit's advances and events in few statements (SQLite, store/multirow.py), and the same
outcomes on PostgreSQL, which runs them row by row: what each append alone would have left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cerebelum_operator.engine import events as ev
from cerebelum_operator.engine.actions import Action, CancelTimer, DeleteTask, LeaseTask, StartTimer
from cerebelum_operator.engine.rates import RateLimit
from cerebelum_operator.store import AppendRequest, ConcurrencyConflict, EventStore, NewExecution, multirow, open_store
from cerebelum_operator.store.prepared import PreparedStatements
from cerebelum_operator.store.sql import SqlEventStore

from .helpers import Appender

ROWS = 133  # over two statements' rows, at the 50 a statement these tests set


@pytest.fixture(autouse=True)
def _small_statements(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multirow, "MAX_ROWS", 50)


def _step(appender: Appender, execution_id: str, *, workflow: str | None = "orders", seq_off: int = 0) -> AppendRequest:
    """A step's completion as the engine writes it: its event, its task deleted, the row advanced."""
    seq = appender.last_seq[execution_id] + seq_off
    completed = ev.StepCompleted(step="a", attempt=1, token=f"{execution_id}/1", output={"n": "é"})
    actions: list[Action] = [DeleteTask(f"{execution_id}/1")]
    summary = Appender.summary(phase="Succeeded", at_ms=3_000, current_steps=["b"], output={"done": True})
    return AppendRequest(
        execution_id, seq, [ev.RecordedEvent(seq + 1, 3_000, completed)], actions, summary, workflow=workflow
    )


def _counted_firsts(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every statement run row by row with a result (`PreparedStatements.first`) from now on."""
    firsts: list[Any] = []
    first = PreparedStatements.first

    def counted(self: PreparedStatements, conn: Any, statement: Any, row: Any) -> Any:
        firsts.append(statement)
        return first(self, conn, statement, row)

    monkeypatch.setattr(PreparedStatements, "first", counted)
    return firsts


@pytest.fixture
def started(store: EventStore, appender: Appender) -> list[str]:
    names = [f"e{n}" for n in range(ROWS)]
    for name in names:
        appender.start(name, actions=[appender.schedule(f"{name}/1")])
    return names


def test_a_batch_advances_every_row_and_records_every_event_as_each_append_alone_would(
    store: EventStore, appender: Appender, started: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    firsts = _counted_firsts(monkeypatch)
    assert store.append_batch([_step(appender, name) for name in started]) == [None] * len(started)

    assert isinstance(store, SqlEventStore)
    assert len(firsts) == (0 if store._multirow is not None else len(started)), "SQLite: no row-by-row update"
    for name in started:
        row = store.get_execution(name)
        assert row is not None
        assert (row.last_seq, row.phase, row.current_steps, row.output) == (2, "Succeeded", ["b"], {"done": True})
        assert (row.error, row.wake_at_ms, row.updated_at_ms) == (None, None, 3_000)
        history = store.load_history(name)
        assert [e.seq for e in history] == [1, 2] and history[1].event.output == {"n": "é"}  # type: ignore[attr-defined]
    assert store.load_tasks() == []


@pytest.mark.parametrize(
    "wrong",
    [{"seq_off": -1}, {"workflow": "payments"}],
    ids=["an execution that moved on", "another workflow than the row's"],
)
def test_one_append_not_where_it_expects_fails_alone_and_the_others_land(
    store: EventStore, appender: Appender, started: list[str], wrong: dict[str, Any]
) -> None:
    requests = [_step(appender, name, **(wrong if name == "e3" else {})) for name in started]
    if "seq_off" in wrong:  # e3 moved on first: its append of seq 1 -> 2 is stale
        appender.append("e3", ev.StepStarted(step="a", attempt=1, token="e3/1", worker_id="w"))
        requests[3] = _step(appender, "e3", seq_off=-1)

    outcomes = store.append_batch(requests)

    failed = {name: outcome for name, outcome in zip(started, outcomes, strict=True) if outcome is not None}
    if "workflow" in wrong:  # a wrong workflow is the engine's bug: refused in the batch, written alone
        assert failed == {}
    else:
        assert list(failed) == ["e3"] and isinstance(failed["e3"], ConcurrencyConflict)
        assert "e3" in str(failed["e3"])
        assert store.get_execution("e3").last_seq == 2  # type: ignore[union-attr]
    for name in started:
        if name != "e3":
            assert store.get_execution(name).last_seq == 2  # type: ignore[union-attr]


def _busy_step(appender: Appender, name: str, index: int) -> AppendRequest:
    """A step of every kind the batch gathers: its task deleted, the next scheduled and leased (on a
    rate-limited queue for every third execution), a timer started and another cancelled."""
    seq = appender.last_seq[name]
    queue = "limited" if index % 3 == 0 else "free"
    actions: list[Action] = [
        DeleteTask(f"{name}/1"),
        appender.schedule(f"{name}/2", task_queue=queue),
        LeaseTask.now(
            f"{name}/2", "w1", lease_ms=10_000, timeout_ms=30_000, now_ms=3_000 + index, last_progress=None, run=1
        ),
        StartTimer(f"{name}:late", fire_at_ms=90_000 + index),
        CancelTimer(f"{name}:early"),
    ]
    completed = ev.StepCompleted(step="a", attempt=1, token=f"{name}/1", output=[index, "ü"])
    return AppendRequest(
        name, seq, [ev.RecordedEvent(seq + 1, 3_000, completed)], actions, Appender.summary(), workflow="orders"
    )


def _stored(store: EventStore) -> tuple[Any, ...]:
    tasks = sorted((row.token, row.state, row.worker_id, row.task_queue, row.arguments) for row in store.load_tasks())
    starts = sorted((row.token, row.started_at_ms) for row in store.live_task_starts(3_000))
    timers = sorted((row.timer_id, row.fire_at_ms) for row in store.due_timers(until_ms=10**12, limit=10_000))
    return tasks, starts, timers


def test_a_batch_leaves_the_tasks_starts_and_timers_each_append_alone_would(
    store_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The same appends, once as one batch and once one by one on a second store of the same kind."""
    outcomes = {}
    for how in ("batch", "alone"):
        url = store_url if how == "batch" else _second(store_url, tmp_path, request)
        store = open_store(url)
        try:
            store.migrate()
            store.put_task_queue("limited", paused=False, note="", rate_limit=RateLimit(100, 60_000), now_ms=1_000)
            appender = Appender(store)
            names = [f"e{n}" for n in range(ROWS)]
            for name in names:
                appender.start(
                    name, actions=[appender.schedule(f"{name}/1"), StartTimer(f"{name}:early", fire_at_ms=50_000)]
                )
            requests = [_busy_step(appender, name, index) for index, name in enumerate(names)]
            if how == "batch":
                assert store.append_batch(requests) == [None] * len(requests)
            else:
                for append in requests:
                    assert store.append_batch([append]) == [None]
            outcomes[how] = _stored(store)
        finally:
            store.close()
    tasks, starts, timers = outcomes["batch"]
    assert len(tasks) == ROWS and {task[1:3] for task in tasks} == {("leased", "w1")}
    assert len(starts) == len([n for n in range(ROWS) if n % 3 == 0]), "only the limited queue's leases"
    assert len(timers) == ROWS and all(timer_id.endswith(":late") for timer_id, _ in timers)
    assert outcomes["batch"] == outcomes["alone"]


def _second(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'alone.db'}"
    server = request.getfixturevalue("postgres_server")
    url: str = server.create_database()
    request.addfinalizer(lambda: server.drop_database(url))
    return url


def _new(name: str, index: int, *, taken: bool = False) -> AppendRequest:
    """A start as the engine writes it: its row, labels, and for every fourth a continue-as-new run."""
    started = ev.ExecutionStarted(workflow="orders", input={"i": index, "s": "ñ"}, spec_hash="h1")
    chain = ("first-" + name, 2) if index % 4 == 0 else None
    new = NewExecution(
        workflow="orders",
        spec={"steps": [{"name": "a"}]},
        spec_hash="h1",
        input={"i": index, "s": "ñ"},
        chain=chain,
        labels={"team": f"t{index % 3}"} if index % 2 == 0 else {},
        shard=None,
    )
    summary = Appender.summary(at_ms=1_000 + index, current_steps=["a"])
    actions: list[Action] = [Appender.schedule(f"{name}/1")]
    return AppendRequest(name, 0, [ev.RecordedEvent(1, 1_000 + index, started)], actions, summary, new)


def _executions(store: EventStore, names: list[str]) -> list[Any]:
    rows = [store.get_execution(name) for name in names]
    labels = store.labels_of(names)
    return [(row, labels.get(row.execution_id)) if row is not None else None for row in rows]


def test_a_batch_of_starts_writes_the_rows_labels_and_runs_each_start_alone_would(
    store_url: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"n{n}" for n in range(ROWS)]
    outcomes = {}
    for how in ("batch", "alone"):
        store = open_store(store_url if how == "batch" else _second(store_url, tmp_path, request))
        try:
            store.migrate()
            starts = [_new(name, index) for index, name in enumerate(names)]
            if how == "batch":
                firsts = _counted_firsts(monkeypatch)
                assert store.append_batch(starts) == [None] * len(starts)
                monkeypatch.undo()
                assert isinstance(store, SqlEventStore)
                assert len(firsts) == (0 if store._multirow is not None else 2 * len(starts))
            else:
                for start in starts:
                    assert store.append_batch([start]) == [None]
            outcomes[how] = (_executions(store, names), store.latest_run("first-n0"), _stored(store))
        finally:
            store.close()
    assert outcomes["batch"] == outcomes["alone"]
    executions, latest, _ = outcomes["batch"]
    assert latest == "n0" and executions[2][1] == {"team": "t2"} and executions[1][1] in (None, {})


def test_a_start_whose_id_is_taken_fails_alone_and_the_others_land(store: EventStore, appender: Appender) -> None:
    appender.start("n5")
    starts = [_new(f"n{n}", n) for n in range(ROWS)]
    outcomes = store.append_batch(starts)
    assert [type(o).__name__ for o in outcomes if o is not None] == ["ExecutionExists"]
    assert outcomes[5] is not None and "n5" in str(outcomes[5])
    assert all(store.get_execution(f"n{n}") is not None for n in range(ROWS))
    first_start = store.get_execution("n5")
    assert first_start is not None and first_start.input is None, "the first start's, untouched"
