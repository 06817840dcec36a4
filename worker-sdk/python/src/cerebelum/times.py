"""Instants from the wire: the Timestamp fields, or the epoch milliseconds an older engine sends."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message

__all__ = ["instant"]


def instant(message: Message, field: str) -> datetime | None:
    """``message.<field>`` (a Timestamp) as a UTC datetime, None when unset.

    An engine before 0.2 sends only the deprecated ``<field>_ms`` epoch milliseconds (0 for
    "never"), so that is read when the Timestamp is unset: a new client reads an old engine. A
    field added after them (``deadline``) has no such twin.
    """
    if message.HasField(field):
        stamp = getattr(message, field)
        return datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, UTC)
    if f"{field}_ms" not in message.DESCRIPTOR.fields_by_name:  # a field newer than the epoch-ms ones
        return None
    ms: int = getattr(message, f"{field}_ms")
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None
