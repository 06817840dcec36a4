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
