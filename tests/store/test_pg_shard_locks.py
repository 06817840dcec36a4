"""Shard ownership through PostgreSQL sessions: membership is a live session, a shard's holder its lock."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from cerebelum_operator.store import EventStore, StoreUnavailable, open_store

pytestmark = pytest.mark.postgres


def _until(check: Callable[[], bool], *, what: str, bound_s: float = 30.0) -> None:
    pause = threading.Event()
    for _ in range(int(bound_s / 0.02)):
        if check():
            return
        pause.wait(0.02)  # polling the server's view, not timing anything
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def store(postgres_database_url: str) -> EventStore:
    opened = open_store(postgres_database_url)
    opened.migrate()
    return opened


def test_members_are_the_open_sessions_and_a_shards_holder_its_lock(store: EventStore) -> None:
    a, b = store.shard_session("a"), store.shard_session("b")
    a.join()
    b.join()
    try:
        assert a.members() == ["a", "b"]
        assert a.try_lock(3) and a.try_lock(4)
        assert not b.try_lock(3)  # held by a's session
        assert b.holders() == {3: "a", 4: "a"}
        a.unlock(4)
        assert b.try_lock(4)
        assert a.holders() == {3: "a", 4: "b"}
        a.close()  # a leaves, or dies: its membership and locks go with its session (once the server ends it)
        _until(lambda: b.members() == ["b"], what="a's session to end")
        assert b.holders() == {4: "b"}
        assert b.try_lock(3)
    finally:
        a.close()
        b.close()
        store.close()


def test_a_session_refuses_a_bad_name_and_a_closed_one_says_so(store: EventStore) -> None:
    try:
        with pytest.raises(ValueError, match="a replica name is 1 to 40 letters"):
            store.shard_session("bad name; DROP TABLE")
        session = store.shard_session("a")
        with pytest.raises(StoreUnavailable, match="the shard session is closed: join again"):
            session.members()
    finally:
        store.close()


def test_sqlite_has_no_shard_sessions(tmp_path: object) -> None:
    store = open_store(f"sqlite:///{tmp_path}/x.db")
    try:
        with pytest.raises(NotImplementedError, match="PostgreSQL only"):
            store.shard_session("a")
    finally:
        store.close()
