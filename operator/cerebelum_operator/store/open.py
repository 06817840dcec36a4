"""`open_store`: the one place that maps a database URL to an `EventStore` subclass."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from .base import EventStore

__all__ = ["open_store"]


def open_store(url: str) -> EventStore:
    """Open (not migrate) the store at `url`.

    `sqlite:///path.db` (or `sqlite:///:memory:`, tests only; `?synchronous=FULL` to fsync
    every commit) or `postgresql://…` / `postgresql+psycopg://…`. Call `migrate()` before use.
    """
    backend = make_url(url).get_backend_name()
    # Imported lazily: a SQLite deployment never loads psycopg, and vice versa.
    if backend == "sqlite":
        from .sqlite import SqliteEventStore

        return SqliteEventStore(url)
    if backend == "postgresql":
        from .postgres import PostgresEventStore

        return PostgresEventStore(url)
    raise ValueError(f"unsupported store URL scheme {backend!r}: use sqlite:///… or postgresql://…")
