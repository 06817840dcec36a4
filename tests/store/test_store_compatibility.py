"""A rollback is safe or refused before it starts (issue 19): an engine refuses a store that a newer
release left in a state it cannot read, naming what to do, and runs on one it can."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, create_engine, insert, select, update

from cerebelum_operator.engine import events as ev
from cerebelum_operator.store import EventStore, StoreTooNew, open_store
from cerebelum_operator.store.migrations import latest_version
from cerebelum_operator.store.postgres import normalise_url
from cerebelum_operator.store.schema import schema_migrations, store_compatibility

from .helpers import Appender


def _engine_for(url: str) -> Engine:
    return create_engine(normalise_url(url) if url.startswith("postgresql") else url)


def _as_if_a_newer_release_ran(
    url: str, *, schema: int | None = None, readable_by: int | None = None, events: int | None = None
) -> None:
    engine = _engine_for(url)
    try:
        with engine.begin() as conn:
            if schema is not None:
                conn.execute(insert(schema_migrations).values(version=schema, applied_at_ms=1))
            for name, version in (("schema_readable_by", readable_by), ("events", events)):
                if version is not None:
                    conn.execute(
                        update(store_compatibility).where(store_compatibility.c.name == name).values(version=version)
                    )
    finally:
        engine.dispose()


def _recorded(url: str) -> dict[str, int]:
    engine = _engine_for(url)
    try:
        with engine.connect() as conn:
            return {str(name): int(version) for name, version in conn.execute(select(store_compatibility)).all()}
    finally:
        engine.dispose()


def test_a_new_store_records_the_schema_older_engines_may_read_and_the_first_event_format(
    store: EventStore, store_url: str
) -> None:
    assert latest_version() >= 4
    assert _recorded(store_url) == {"schema_readable_by": 3, "events": 1}


def test_an_engine_refuses_a_store_whose_newer_schema_it_cannot_read_naming_both_versions(
    store: EventStore, store_url: str
) -> None:
    newer = latest_version() + 1
    _as_if_a_newer_release_ran(store_url, schema=newer, readable_by=newer)
    again = open_store(store_url)
    try:
        with pytest.raises(StoreTooNew) as refused:
            again.migrate()
    finally:
        again.close()
    message = str(refused.value)
    assert f"schema is at version {newer}" in message and f"knows versions up to {latest_version()}" in message
    assert "restore a backup taken before the upgrade" in message


def test_an_engine_runs_on_a_newer_schema_its_release_said_it_may_still_read(store: EventStore, store_url: str) -> None:
    newer = latest_version() + 1
    _as_if_a_newer_release_ran(store_url, schema=newer, readable_by=latest_version())  # one that only added tables
    again = open_store(store_url)
    try:
        assert again.migrate() == newer
        Appender(again).start("e1")
        assert again.get_execution("e1") is not None
    finally:
        again.close()


def test_an_engine_refuses_a_store_whose_histories_hold_events_of_a_newer_format(
    store: EventStore, store_url: str
) -> None:
    _as_if_a_newer_release_ran(store_url, events=ev.EVENT_FORMAT + 1)
    again = open_store(store_url)
    try:
        with pytest.raises(StoreTooNew, match=rf"events of format {ev.EVENT_FORMAT + 1}.*up to {ev.EVENT_FORMAT}"):
            again.migrate()
    finally:
        again.close()


def test_an_append_records_a_newer_event_format_in_its_transaction_and_older_ones_change_nothing(
    store: EventStore, appender: Appender, store_url: str
) -> None:
    appender.start("e1")
    appender.append("e1", ev.WorkflowTaskStarted("t1", "w1"))
    assert _recorded(store_url)["events"] == 1, "an event every engine of format 1 reads"

    appender.append("e1", ev.WorkflowTaskStarted("t2", "w1", time_ms=5))
    assert _recorded(store_url)["events"] == 2, "a continuation's time: format 2"
    assert store.load_history("e1")[-1].event == ev.WorkflowTaskStarted("t2", "w1", time_ms=5)
