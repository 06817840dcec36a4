"""The admission core: who of a flow key runs and who waits (issue 19)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cerebelum_operator.runtime.flow_control import SlotBook
from cerebelum_operator.store import FlowSlotRow


def wait(
    book: SlotBook, execution_id: str, key: str = "k", *, priority: int = 0, limit: int = 1, at: int = 0
) -> list[str]:
    return book.waiting(execution_id, workflow="wf", key=key, priority=priority, limit=limit, since_ms=at)


def test_the_first_executions_of_a_key_are_admitted_up_to_the_limit_and_the_rest_wait() -> None:
    book = SlotBook()
    assert wait(book, "a", limit=2) == ["a"]
    assert wait(book, "b", limit=2) == ["b"]
    assert wait(book, "c", limit=2) == []
    assert book.running("wf", "k") == {"a", "b"} and book.waiting_count("wf", "k") == 1

    assert book.gone("a") == ["c"]
    assert book.running("wf", "k") == {"b", "c"}


def test_waiting_executions_go_by_priority_then_in_the_order_they_came() -> None:
    book = SlotBook()
    wait(book, "running")
    wait(book, "low-early", priority=0, at=1)
    wait(book, "high", priority=5, at=2)
    wait(book, "low-late", priority=0, at=3)

    order = [book.gone("running")[0]]
    order += book.gone(order[-1])
    order += book.gone(order[-1])
    assert order == ["high", "low-early", "low-late"]


def test_keys_do_not_share_slots_so_a_busy_key_never_holds_another_back() -> None:
    book = SlotBook()
    for index in range(100):
        wait(book, f"busy-{index}", key="busy")
    assert wait(book, "quiet-1", key="quiet") == ["quiet-1"]


def test_one_that_leaves_the_line_is_skipped_and_its_end_admits_nobody_twice() -> None:
    book = SlotBook()
    wait(book, "a")
    wait(book, "b")
    wait(book, "c")
    assert book.gone("b") == []  # cancelled while waiting
    assert book.gone("a") == ["c"]
    assert book.gone("a") == []  # told twice


def test_being_told_twice_that_one_waits_counts_it_once() -> None:
    book = SlotBook()
    wait(book, "a")
    wait(book, "b")
    wait(book, "b")
    assert book.gone("a") == ["b"]
    assert book.gone("b") == []


def test_loading_the_store_counts_the_running_and_admits_what_fits_now() -> None:
    rows = [
        FlowSlotRow("r1", "wf", "k", 0, 2, True, 1),
        FlowSlotRow("w1", "wf", "k", 0, 2, False, 2),
        FlowSlotRow("w2", "wf", "k", 0, 2, False, 3),
    ]
    book = SlotBook()
    assert book.load(rows) == ["w1"]  # a dead engine was about to admit it
    assert book.running("wf", "k") == {"r1", "w1"}
    assert wait(book, "w1", limit=2) == []  # the resume's decision, seen again, changes nothing


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["wait", "end"]), st.integers(0, 11), st.sampled_from(["x", "y"]), st.integers(0, 3)),
        max_size=80,
    ),
    st.integers(1, 3),
)
def test_no_key_ever_runs_more_than_its_limit_and_no_one_waits_while_a_slot_is_free(
    steps: list[tuple[str, int, str, int]], limit: int
) -> None:
    book = SlotBook()
    key_of: dict[str, str] = {}
    running: set[str] = set()
    ended: set[str] = set()
    for what, number, key, priority in steps:
        execution_id = f"e{number}"
        if what == "wait" and execution_id not in key_of:
            key_of[execution_id] = key
            running |= set(
                book.waiting(execution_id, workflow="wf", key=key, priority=priority, limit=limit, since_ms=0)
            )
        elif what == "end" and execution_id in key_of and execution_id not in ended:
            ended.add(execution_id)
            running.discard(execution_id)
            running |= set(book.gone(execution_id))
        for each in ("x", "y"):
            mine = {e for e in running if key_of[e] == each}
            assert mine == book.running("wf", each)
            assert len(mine) <= limit
            assert len(mine) == limit or book.waiting_count("wf", each) == 0


def row(execution_id: str, *, running: bool, limit: int = 2, priority: int = 0, at: int = 0) -> FlowSlotRow:
    return FlowSlotRow(execution_id, "wf", "k", priority, limit, running, at)


def test_on_a_split_the_other_engines_running_slots_count_and_only_the_room_left_is_admitted() -> None:
    book = SlotBook()
    rows = [row("mine-running", running=True, limit=3), row("w1", running=False, limit=3, at=1)]
    rows.append(row("w2", running=False, limit=3, at=2))
    # Three running across the split: this engine's one, and two of another engine's.
    assert book.reconcile(rows, {("wf", "k"): 3}, admitting=()) == []
    assert book.gone("mine-running") == ["w1"]  # the others still hold two of the three
    assert book.running("wf", "k") == {"w1"} and book.waiting_count("wf", "k") == 1

    # The other engine's two ended: the next reconcile sees only w1 running (not yet committed here).
    assert book.reconcile(
        [row("w1", running=False, limit=3, at=1), row("w2", running=False, limit=3, at=2)], {}, admitting={"w1"}
    ) == ["w2"]


def test_an_admission_the_store_refused_waits_at_its_place_until_the_next_reconcile_finds_room() -> None:
    book = SlotBook()
    assert wait(book, "early", limit=1, priority=1, at=1) == ["early"]
    wait(book, "late", limit=1, at=2)
    book.taken("early")  # another engine's admission filled the key meanwhile
    assert book.running("wf", "k") == frozenset() and book.waiting_count("wf", "k") == 2
    assert wait(book, "later", limit=1, at=3) == [], "no room here until the store says otherwise"

    rows = [
        row(name, running=False, limit=1, priority=1 if name == "early" else 0, at=at)
        for name, at in (("early", 1), ("late", 2), ("later", 3))
    ]
    assert book.reconcile(rows, {}, admitting=()) == ["early"], "its priority and place kept"


def test_an_admission_in_flight_through_a_reconcile_keeps_its_place_if_the_store_then_refuses_it() -> None:
    book = SlotBook()
    rows = [row("flying", running=False, limit=1, priority=3, at=1), row("next", running=False, limit=1, at=2)]
    assert book.reconcile(rows, {}, admitting={"flying"}) == []  # counted running: no room for "next"
    book.taken("flying")
    assert book.waiting_count("wf", "k") == 2
    assert book.reconcile(rows, {}, admitting=()) == ["flying"]
