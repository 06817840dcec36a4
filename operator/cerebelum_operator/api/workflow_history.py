"""The history a workflow task carries to its worker, as JSON (docs/code-workflows-protocol.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..engine.events import RecordedEvent
from ..engine.timer_steps import rfc3339

__all__ = ["HISTORY_PAGE_BYTES", "HISTORY_PAGE_EVENTS", "history_page", "history_page_to"]

HISTORY_PAGE_EVENTS = 2_000  # read from the store at once; the rest comes by GetWorkflowHistory
HISTORY_PAGE_BYTES = 2 * 1024 * 1024  # a page stops past this (one event at least): the task stays small


def history_page(events: Sequence[RecordedEvent], *, until_seq: int) -> str:
    """A JSON array of ``{"seq", "type", "at", "data"}``, the objects `cerebelum history -o json`
    writes, up to ``until_seq`` and about ``HISTORY_PAGE_BYTES``; the caller asks for the rest."""
    return history_page_to(events, until_seq=until_seq)[0]


def history_page_to(events: Sequence[RecordedEvent], *, until_seq: int) -> tuple[str, int]:
    """`history_page`, and the seq of its last event (0 when it holds none)."""
    parts: list[str] = []
    size = 2
    last = 0
    for recorded in events:
        if recorded.seq > until_seq:
            break
        text = json.dumps(
            {
                "seq": recorded.seq,
                "type": recorded.event.kind,
                "at": rfc3339(recorded.at_ms),
                "data": recorded.event.to_data(),
            },
            separators=(",", ":"),
        )
        if parts and size + len(text) > HISTORY_PAGE_BYTES:
            break
        parts.append(text)
        size += len(text) + 1
        last = recorded.seq
    return "[" + ",".join(parts) + "]", last
