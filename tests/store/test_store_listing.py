"""Execution labels and the paged, filtered listing (migration 8), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from cerebelum_operator.engine import events as ev
from cerebelum_operator.store import (
    EventStore,
    ExecutionExists,
    ExecutionPage,
    ExecutionQuery,
    ExecutionRow,
    PageCursor,
)

from .helpers import Appender


def _ids(page: ExecutionPage) -> list[str]:
    return [row.execution_id for row in page.rows]


def _all_pages(store: EventStore, query: ExecutionQuery, *, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    after: PageCursor | None = None
    while True:
        page = store.list_executions_page(query, after=after, limit=limit)
        pages.append(_ids(page))
        if page.next is None:
            return pages
        after = PageCursor.decode(page.next.encode())  # as a caller would: through the token


@pytest.fixture
def catalogue(appender: Appender) -> Appender:
    """Six executions of two workflows, phases and labels, started at known times."""
    appender.start("pay-1", workflow="payments", at_ms=1_000, labels={"team": "billing", "env": "prod"})
    appender.start("pay-2", workflow="payments", at_ms=2_000, labels={"team": "billing", "env": "dev"})
    appender.start("pay-3", workflow="payments", at_ms=3_000, phase="Succeeded", labels={"team": "billing"})
    appender.start("ship-1", workflow="shipping", at_ms=4_000, labels={"team": "logistics", "env": "prod"})
    appender.start("ship-2", workflow="shipping", at_ms=5_000, phase="Failed")
    appender.start("ship_3%", workflow="shipping", at_ms=6_000, phase="Succeeded", labels={"env": "prod"})
    return appender


def test_labels_are_stored_with_the_execution_and_read_back_by_id(store: EventStore, catalogue: Appender) -> None:
    assert store.labels_of(["pay-1", "ship-2", "ship-1", "nobody"]) == {
        "pay-1": {"env": "prod", "team": "billing"},
        "ship-1": {"env": "prod", "team": "logistics"},
    }
    assert store.labels_of([]) == {}


def test_a_start_refused_as_existing_writes_none_of_its_labels(store: EventStore, catalogue: Appender) -> None:
    with pytest.raises(ExecutionExists):
        Appender(store).start("pay-1", workflow="payments", labels={"team": "intruder"})
    assert store.labels_of(["pay-1"]) == {"pay-1": {"env": "prod", "team": "billing"}}


def test_retiring_an_execution_removes_its_labels(store: EventStore, catalogue: Appender) -> None:
    catalogue.append("pay-1", ev.ExecutionSucceeded(output=None), at_ms=9_000, phase="Succeeded")
    assert store.retire("pay-1", retired_at_ms=10_000, export=None) is not None
    assert store.labels_of(["pay-1", "pay-2"]) == {"pay-2": {"env": "dev", "team": "billing"}}
    assert _ids(store.list_executions_page(ExecutionQuery(labels=(("env", "prod"),)), after=None, limit=10)) == [
        "ship_3%",
        "ship-1",
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (ExecutionQuery(), ["ship_3%", "ship-2", "ship-1", "pay-3", "pay-2", "pay-1"]),
        (ExecutionQuery(workflow="payments"), ["pay-3", "pay-2", "pay-1"]),
        (ExecutionQuery(phases=("Succeeded",)), ["ship_3%", "pay-3"]),
        (ExecutionQuery(phases=("Failed", "Succeeded")), ["ship_3%", "ship-2", "pay-3"]),
        (ExecutionQuery(labels=(("team", "billing"),)), ["pay-3", "pay-2", "pay-1"]),
        (ExecutionQuery(labels=(("team", "billing"), ("env", "prod"))), ["pay-1"]),
        (ExecutionQuery(labels=(("env", "staging"),)), []),
        (ExecutionQuery(created_from_ms=2_000, created_to_ms=5_000), ["ship-1", "pay-3", "pay-2"]),
        (ExecutionQuery(created_from_ms=5_000), ["ship_3%", "ship-2"]),
        (ExecutionQuery(created_to_ms=1_000), []),
        (ExecutionQuery(id_contains="SHIP"), ["ship_3%", "ship-2", "ship-1"]),
        (ExecutionQuery(id_contains="_"), ["ship_3%"]),  # a literal underscore, not any one character
        (ExecutionQuery(id_contains="%"), ["ship_3%"]),  # a literal percent sign, not anything
        (ExecutionQuery(id_contains="-"), ["ship-2", "ship-1", "pay-3", "pay-2", "pay-1"]),
        (
            ExecutionQuery(
                workflow="shipping",
                phases=("Running", "Succeeded"),
                labels=(("env", "prod"),),
                created_from_ms=4_000,
                created_to_ms=7_000,
                id_contains="ship",
            ),
            ["ship_3%", "ship-1"],
        ),
        (ExecutionQuery(workflow="payments", phases=("Running",), labels=(("env", "dev"),)), ["pay-2"]),
    ],
)
def test_every_filter_and_their_combination_select_the_matching_executions_newest_first(
    store: EventStore, catalogue: Appender, query: ExecutionQuery, expected: list[str]
) -> None:
    page = store.list_executions_page(query, after=None, limit=50)
    assert _ids(page) == expected
    assert page.next is None
    assert all(isinstance(row, ExecutionRow) for row in page.rows)


def test_keyset_pages_never_skip_or_repeat_executions_that_share_a_millisecond(
    store: EventStore, appender: Appender
) -> None:
    # 23 executions in 4 distinct milliseconds, written in no particular order.
    ids = [f"e{n:02d}" for n in range(23)]
    for n, execution_id in sorted(enumerate(ids), key=lambda pair: (pair[0] * 7) % 23):
        appender.start(execution_id, at_ms=1_000 + (n % 4), labels={"batch": "a" if n % 2 else "b"})
    newest_first = sorted(ids, key=lambda i: (1_000 + int(i[1:]) % 4, i), reverse=True)

    for limit in (1, 3, 5, 23, 50):
        pages = _all_pages(store, ExecutionQuery(), limit=limit)
        assert [i for page in pages for i in page] == newest_first
        assert all(len(page) == limit for page in pages[:-1]) and 1 <= len(pages[-1]) <= limit
    labelled = [i for page in _all_pages(store, ExecutionQuery(labels=(("batch", "a"),)), limit=4) for i in page]
    assert labelled == [i for i in newest_first if int(i[1:]) % 2]


def test_a_page_that_ends_exactly_at_the_last_row_says_there_is_no_next(store: EventStore, catalogue: Appender) -> None:
    first = store.list_executions_page(ExecutionQuery(workflow="payments"), after=None, limit=2)
    assert _ids(first) == ["pay-3", "pay-2"] and first.next == PageCursor(2_000, "pay-2")
    second = store.list_executions_page(ExecutionQuery(workflow="payments"), after=first.next, limit=2)
    assert _ids(second) == ["pay-1"] and second.next is None
    exact = store.list_executions_page(ExecutionQuery(workflow="payments"), after=None, limit=3)
    assert len(exact.rows) == 3 and exact.next is None


def test_executions_started_after_the_first_page_do_not_shift_the_next_one(
    store: EventStore, catalogue: Appender
) -> None:
    first = store.list_executions_page(ExecutionQuery(), after=None, limit=3)
    catalogue.start("late", at_ms=99_000)
    second = store.list_executions_page(ExecutionQuery(), after=first.next, limit=3)
    assert _ids(second) == ["pay-3", "pay-2", "pay-1"]


def test_a_page_size_out_of_bounds_is_refused(store: EventStore) -> None:
    for limit in (0, 1001):
        with pytest.raises(ValueError, match="a page holds 1 to 1000"):
            store.list_executions_page(ExecutionQuery(), after=None, limit=limit)


def test_counts_by_phase_follow_every_filter_but_the_phases(store: EventStore, catalogue: Appender) -> None:
    assert store.count_executions_by_phase(ExecutionQuery()) == {"Running": 3, "Succeeded": 2, "Failed": 1}
    assert store.count_executions_by_phase(ExecutionQuery(phases=("Failed",))) == {
        "Running": 3,
        "Succeeded": 2,
        "Failed": 1,
    }
    assert store.count_executions_by_phase(ExecutionQuery(workflow="shipping")) == {
        "Running": 1,
        "Succeeded": 1,
        "Failed": 1,
    }
    assert store.count_executions_by_phase(ExecutionQuery(labels=(("env", "prod"),), created_to_ms=6_000)) == {
        "Running": 2
    }
    assert store.count_executions_by_phase(ExecutionQuery(id_contains="nothing-like-it")) == {}
