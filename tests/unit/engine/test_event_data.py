"""An event's stored data: every field by name, equal to what `dataclasses.asdict` gave before."""

from __future__ import annotations

import json
import typing
from dataclasses import asdict, fields
from typing import Any

import pytest

from cerebelum_operator.engine import events as ev

PAYLOAD: Any = {"order": {"lines": [1, 2.5, None, "x"], "nested": {"deep": [True, {"k": "v"}]}}}


def sample(annotation: Any) -> Any:
    """A value of a field's type: a nested JSON payload wherever JSON goes."""
    text = str(annotation)
    if "JSON" in text or "Any" in text:
        return PAYLOAD
    if text.startswith("list"):
        return ["a", "b"]
    if text.startswith("dict"):
        return {"a": PAYLOAD}
    if "bool" in text:
        return True
    if "int" in text:
        return 7
    return "text"


def instance(cls: type[ev.Event]) -> ev.Event:
    hints = typing.get_type_hints(cls, globalns=vars(ev))
    return cls(**{f.name: sample(hints[f.name]) for f in fields(cls)})


KINDS = sorted(ev._EVENT_TYPES)


@pytest.mark.parametrize("kind", KINDS)
def test_an_event_s_data_is_its_fields_as_asdict_gave_them_and_rebuilds_the_event(kind: str) -> None:
    cls = ev._EVENT_TYPES[kind]
    event = instance(cls)
    data = event.to_data()
    if cls is not ev.WorkflowTaskStarted:  # its own to_data leaves out a time it does not have
        assert data == asdict(event)
    assert ev.event_from_record(cls.kind, json.loads(json.dumps(data))) == event
