"""Instants on the wire: `google.protobuf.Timestamp`, beside the deprecated epoch-millisecond fields.

Every message that carries a time has both until v2: the `*_ms` field (what clients before 0.2
read) and a Timestamp (what grpcurl, other languages' clients and our SDKs read now). The engine
fills both, so old and new clients read the same instant; 0 ("never") leaves the Timestamp unset.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

__all__ = ["timestamp"]


def timestamp(ms: int | None) -> Timestamp | None:
    """`ms` epoch milliseconds as a Timestamp; None (the field stays unset) for 0 or None."""
    if not ms:
        return None
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp
