"""Damage a real SQLite file the way a bad disk or a stray write would: for corruption tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["damage_table"]


def damage_table(path: Path, table: str) -> None:
    """Overwrite the root page of `table` in the main file with bytes no b-tree page can hold.

    The WAL is checkpointed first, so readers find the damaged page in the file, not a good
    copy in the log; and the write that follows (user_version) changes the WAL index, which
    makes every open connection drop the pages it cached.
    """
    with sqlite3.connect(path, isolation_level=None) as side:
        side.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = side.execute("PRAGMA page_size").fetchone()[0]
        (root,) = side.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    with path.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * page_size)
    with sqlite3.connect(path, isolation_level=None) as side:
        version = side.execute("PRAGMA user_version").fetchone()[0]
        side.execute(f"PRAGMA user_version = {version + 1}")
    side.close()
