"""The schedules table: created once per key, written only at the revision the writer read."""

from __future__ import annotations

import pytest

from cerebelum_operator.store import EventStore, ScheduleExists

SPEC = {"workflow": "report", "interval": "10s", "input": {"big": "x" * 1000}}


def test_a_schedule_is_created_at_revision_one_and_reads_back_equal(store: EventStore) -> None:
    created = store.create_schedule("nightly", spec=SPEC, state={"cursorMs": 5}, next_fire_at_ms=10, now_ms=5)
    assert created.revision == 1
    assert store.get_schedule("nightly") == created


def test_a_second_schedule_under_the_same_key_is_refused(store: EventStore) -> None:
    store.create_schedule("nightly", spec=SPEC, state={"cursorMs": 5}, next_fire_at_ms=10, now_ms=5)
    with pytest.raises(ScheduleExists, match="'nightly' already exists"):
        store.create_schedule("nightly", spec=SPEC, state={"cursorMs": 6}, next_fire_at_ms=10, now_ms=6)


def test_a_state_write_keeps_the_spec_and_moves_the_revision(store: EventStore) -> None:
    store.create_schedule("nightly", spec=SPEC, state={"cursorMs": 5}, next_fire_at_ms=10, now_ms=5)
    updated = store.update_schedule(
        "nightly", expected_revision=1, state={"cursorMs": 10}, next_fire_at_ms=20, now_ms=10
    )
    assert updated is not None
    assert (updated.revision, updated.state, updated.spec, updated.next_fire_at_ms) == (2, {"cursorMs": 10}, SPEC, 20)
    assert updated.created_at_ms == 5
    assert updated.updated_at_ms == 10


def test_a_write_from_a_stale_revision_changes_nothing(store: EventStore) -> None:
    store.create_schedule("nightly", spec=SPEC, state={"cursorMs": 5}, next_fire_at_ms=10, now_ms=5)
    changed = {**SPEC, "interval": "1m"}
    store.update_schedule(
        "nightly", expected_revision=1, state={"cursorMs": 7}, next_fire_at_ms=60, now_ms=7, spec=changed
    )
    lost = store.update_schedule("nightly", expected_revision=1, state={"cursorMs": 10}, next_fire_at_ms=20, now_ms=10)
    assert lost is None
    row = store.get_schedule("nightly")
    assert row is not None
    assert (row.revision, row.state, row.spec) == (2, {"cursorMs": 7}, changed)


def test_schedules_are_listed_by_key_and_by_namespace(store: EventStore) -> None:
    for key in ("team-b/x", "alone", "team-a/y", "team-a/x"):
        store.create_schedule(key, spec=SPEC, state={"cursorMs": 0}, next_fire_at_ms=None, now_ms=1)
    assert [r.key for r in store.list_schedules()] == ["alone", "team-a/x", "team-a/y", "team-b/x"]
    assert [r.key for r in store.list_schedules(namespace="team-a")] == ["team-a/x", "team-a/y"]
    assert [r.key for r in store.list_schedules(namespace="")] == ["alone"]


def test_deleting_says_whether_there_was_a_schedule(store: EventStore) -> None:
    store.create_schedule("nightly", spec=SPEC, state={"cursorMs": 5}, next_fire_at_ms=10, now_ms=5)
    assert store.delete_schedule("nightly") is True
    assert store.delete_schedule("nightly") is False
    assert store.get_schedule("nightly") is None
    assert store.update_schedule("nightly", expected_revision=1, state={}, next_fire_at_ms=None, now_ms=9) is None
