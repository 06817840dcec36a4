"""One engine per SQLite file, and a damaged file refused as permanent (findings 9 and 12 of issue 13)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from cerebelum_operator.store import StoreUnavailable, open_store
from cerebelum_operator.store.base import StoreCorrupted, StoreLocked
from tests.store.helpers import Appender
from tests.support.sqlite_damage import damage_table


def store_with_an_execution(path: Path) -> None:
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    Appender(store).start("run-1")
    store.close()


def test_a_second_exclusive_claim_on_one_sqlite_file_is_refused_naming_the_file_and_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    first, second = open_store(f"sqlite:///{path}"), open_store(f"sqlite:///{path}")
    try:
        first.claim_exclusively()
        with pytest.raises(StoreLocked, match=rf"{path}.*pid {os.getpid()}"):
            second.claim_exclusively()
    finally:
        first.close()
        second.close()


def test_the_exclusive_claim_ends_when_its_store_is_closed(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    first = open_store(f"sqlite:///{path}")
    first.claim_exclusively()
    first.close()
    second = open_store(f"sqlite:///{path}")
    try:
        second.claim_exclusively()
    finally:
        second.close()


def test_a_store_opened_without_a_claim_still_works_beside_the_engine(tmp_path: Path) -> None:
    """Tools (the chaos suite's checker, a backup) read the file while the engine runs."""
    path = tmp_path / "engine.db"
    store_with_an_execution(path)
    engine = open_store(f"sqlite:///{path}")
    reader = open_store(f"sqlite:///{path}")
    try:
        engine.claim_exclusively()
        engine.migrate()
        reader.migrate()
        row = reader.get_execution("run-1")
        assert row is not None
    finally:
        engine.close()
        reader.close()


def assert_refused_at_open(path: Path, message: str) -> None:
    store = open_store(f"sqlite:///{path}")
    try:
        with pytest.raises(StoreCorrupted, match=message):
            store.migrate()
    finally:
        store.close()


def test_a_file_that_is_not_a_sqlite_database_is_refused_at_open_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    path.write_bytes(b"this is a text file, not a database\n" * 200)
    assert_refused_at_open(path, rf"{path} is not a SQLite database")


def test_a_database_with_a_damaged_page_is_refused_at_open_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    store_with_an_execution(path)
    damage_table(path, "executions")
    assert_refused_at_open(path, rf"{path} is corrupt")


def test_damage_found_while_running_is_a_permanent_error_naming_the_file_not_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    store_with_an_execution(path)
    store = open_store(f"sqlite:///{path}")
    try:
        store.migrate()
        assert store.get_execution("run-1") is not None
        damage_table(path, "executions")
        with pytest.raises(StoreCorrupted, match=rf"{path} is corrupt") as refused:
            store.get_execution("run-1")
        assert not isinstance(refused.value, StoreUnavailable)
        with pytest.raises(StoreCorrupted, match=rf"{path} is corrupt"):
            Appender(store).start("run-2")
    finally:
        store.close()


def test_an_intact_database_passes_the_check_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    store_with_an_execution(path)
    store = open_store(f"sqlite:///{path}")
    try:
        store.migrate()
        assert store.get_execution("run-1") is not None
    finally:
        store.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA quick_check").fetchone() == ("ok",)
    check.close()
