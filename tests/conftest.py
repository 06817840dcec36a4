"""Fixtures shared by every test suite; suite-specific ones live next to their tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.support.postgres import PostgresServer, PostgresUnavailable, start_postgres


def _serve(start: Callable[[], PostgresServer]) -> Iterator[PostgresServer]:
    """A server from ``start`` (skipped without PostgreSQL, an error on CI), stopped afterwards."""
    try:
        server = start()
    except PostgresUnavailable as e:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip(str(e))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session."""
    yield from _serve(start_postgres)


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, which it may stop or restart without disturbing others."""
    yield from _serve(PostgresServer.start)


@pytest.fixture
def postgres_database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)
