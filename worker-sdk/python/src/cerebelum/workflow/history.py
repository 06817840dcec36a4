"""History events as a replayer reads them: ``{"seq", "type", "at", "data"}`` from JSON or from the client."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from cerebelum.workflow.errors import WorkflowTaskError

__all__ = ["Event", "HistoryInput", "code_time", "from_epoch_ms", "parse_events", "parse_time"]


class Event(NamedTuple):
    seq: int
    type: str
    at: datetime
    data: dict[str, Any]


HistoryInput = str | Iterable[Mapping[str, Any] | Any]
"""JSON text of an event array, event mappings, or objects with ``seq``/``type``/``at``/``data``
(``cerebelum.HistoryEvent``)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(value: Any) -> datetime:
    """An RFC 3339 text or a datetime, as an aware UTC datetime (naive ones are taken as UTC)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise WorkflowTaskError(f"history: {value!r} is not an RFC 3339 instant") from exc
    elif value is None:
        return _EPOCH
    else:
        raise WorkflowTaskError(f"history: {value!r} is not an RFC 3339 instant")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_events(history: HistoryInput) -> list[Event]:
    """The events of ``history``, checked to be in ascending seq order."""
    if isinstance(history, str | bytes):
        try:
            items: Iterable[Any] = json.loads(history) if history else []
        except ValueError as exc:
            raise WorkflowTaskError(f"history: not JSON: {exc}") from exc
        if not isinstance(items, list):
            raise WorkflowTaskError("history: not a JSON array of events")
    else:
        items = history
    events: list[Event] = []
    for item in items:
        event = _event(item)
        if events and event.seq <= events[-1].seq:
            raise WorkflowTaskError(f"history: event seq {event.seq} follows seq {events[-1].seq}")
        events.append(event)
    return events


def _event(item: Any) -> Event:
    if isinstance(item, Mapping):
        seq, kind, at, data = item.get("seq"), item.get("type"), item.get("at"), item.get("data")
    else:
        seq, kind, at, data = (getattr(item, name, None) for name in ("seq", "type", "at", "data"))
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(kind, str):
        raise WorkflowTaskError(f"history: an event needs an integer seq and a type: {item!r}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise WorkflowTaskError(f"history: the data of event seq {seq} is not an object")
    return Event(seq, kind, parse_time(at), data)


def from_epoch_ms(ms: int) -> datetime:
    """An instant given in unix epoch milliseconds, as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def code_time(event: Event) -> datetime:
    """What the code's ``now()`` gives for a ``WorkflowTaskStarted``: the time the worker ran it at, when
    it ran before the task was recorded (``time_ms``, a continuation), else the event's own time."""
    ms = event.data.get("time_ms")
    if isinstance(ms, int) and not isinstance(ms, bool):
        return from_epoch_ms(ms)
    return event.at
