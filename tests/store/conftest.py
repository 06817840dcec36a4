"""Store fixtures: every store test runs once on SQLite and once on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebelum_operator.store import EventStore, open_store

from .helpers import Appender


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database of each kind: a temp file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_database_url")
    return url


@pytest.fixture
def unmigrated_store(store_url: str) -> Iterator[EventStore]:
    store = open_store(store_url)
    yield store
    store.close()


@pytest.fixture
def store(unmigrated_store: EventStore) -> EventStore:
    unmigrated_store.migrate()
    return unmigrated_store


@pytest.fixture
def appender(store: EventStore) -> Appender:
    return Appender(store)
