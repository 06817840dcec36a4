"""The store's JSON columns: written by orjson, read back as the same values, with json for what it refuses."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text

from cerebelum_operator.model.limits import compact_json
from cerebelum_operator.store import EventStore
from cerebelum_operator.store.sql import dumps_json

from .helpers import Appender

# What a payload can hold: text past ASCII, an integer past 64 bits (JSON has no bound), nesting.
AWKWARD = {"name": "Zoë 東京 🚀", "big": 10**30, "neg": -(2**70), "f": [0.1, 1e16, -0.0], "n": {"deep": [None, True]}}


def test_json_columns_keep_text_past_ascii_as_it_is() -> None:
    assert dumps_json({"name": "Zoë"}) == '{"name":"Zoë"}'


def _nested(depth: int) -> list[object]:
    outer: list[object] = []
    inner = outer
    for _ in range(depth):
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]
    return outer


@pytest.mark.parametrize(
    "value",
    [{"big": 10**30}, {1: "a key that is not text"}, {"lone": "\ud800"}, _nested(400)],
    ids=["integer past 64 bits", "non-text key", "lone surrogate", "nested deeper than orjson goes"],
)
def test_what_orjson_refuses_is_written_as_json_writes_it(value: object) -> None:
    assert dumps_json(value) == compact_json(value)


def test_an_awkward_payload_reads_back_as_it_was_written(store: EventStore, appender: Appender) -> None:
    appender.start("e1", input=AWKWARD)
    row = store.get_execution("e1")
    assert row is not None
    assert row.input == AWKWARD
    assert store.load_history("e1")[0].event.input == AWKWARD  # type: ignore[attr-defined]


def test_a_workflow_written_with_json_escapes_is_unchanged_when_put_again(store: EventStore, store_url: str) -> None:
    """An installation upgraded from a version that wrote every column with json's ASCII escapes."""
    spec = {"steps": [{"name": "café"}], "n": 10**30}
    store.put_workflow("orders", {"steps": []}, now_ms=1)
    engine = create_engine(store_url)
    with engine.begin() as conn:  # the row as the earlier version wrote it
        conn.execute(
            text("UPDATE workflows SET spec = :spec WHERE name = 'orders'"),
            {"spec": json.dumps(spec, separators=(",", ":"))},
        )
    engine.dispose()
    assert "\\u00e9" in json.dumps(spec)

    again = store.put_workflow("orders", spec, now_ms=2)
    assert (again.version, again.updated_at_ms, again.spec) == (1, 1, spec)
