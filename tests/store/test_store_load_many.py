"""Loading many executions in one call (the timers' wake): the same as loading each, unknown ids left out."""

from __future__ import annotations

from cerebelum_operator.engine import events as ev
from cerebelum_operator.store import EventStore
from tests.store.helpers import Appender


def test_load_executions_gives_each_row_and_history_as_load_execution_does(store: EventStore) -> None:
    appender = Appender(store)
    ids = [f"e{i:04d}" for i in range(1_200)]  # more than one statement's worth of ids
    for execution_id in ids:
        appender.start(execution_id)
    appender.append(
        "e0007", ev.StepScheduled(step="a", attempt=1, poll=0, token="t-1", task_queue="default", visible_at_ms=2_000)
    )

    loaded = store.load_executions([*ids, "missing", "e0007"])

    assert set(loaded) == set(ids), "every known id once; the unknown one left out"
    for execution_id in ("e0000", "e0007", "e1199"):
        assert loaded[execution_id] == store.load_execution(execution_id)
    assert [r.seq for r in loaded["e0007"][1]] == [1, 2]
    assert store.load_executions([]) == {}
