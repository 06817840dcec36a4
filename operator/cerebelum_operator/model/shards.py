"""An execution's shard: stable across processes, releases and platforms (issue 21, scale-out).

The store records each execution's shard in its row (migration 9) and the engine places new
executions with `shard_of`; `runtime.shards` decides which replica owns which shard. Here,
below both, because the store fills the column of existing rows when it migrates.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["DEFAULT_SHARDS", "MAX_ADDRESS", "MAX_SHARDS", "check_replica", "check_shard_count", "shard_of"]

MAX_SHARDS = 1024  # a Lease each: more would cost the API server more than any replica count needs
# What migration 9 creates. Fixed for a store once written: changing it would move every execution.
DEFAULT_SHARDS = 16


MAX_ADDRESS = 255  # host:port another replica dials; stored in shard_owners
_REPLICA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,39}$")


def check_replica(name: str, address: str | None = None) -> None:
    """A replica's name (what shard_owners and a PostgreSQL session's application_name record) and address."""
    if not _REPLICA.match(name):
        raise ValueError(
            f"a replica name is 1 to 40 letters, digits, '.', '_', ':' or '-', starting with a letter or"
            f" digit, not {name[:60]!r}"
        )
    if address is not None and not 0 < len(address) <= MAX_ADDRESS:
        raise ValueError(f"a replica's advertised address is 1 to {MAX_ADDRESS} characters, not {len(address)}")


def check_shard_count(shards: int) -> None:
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"the shard count must be between 1 and {MAX_SHARDS}, not {shards}")


def shard_of(execution_id: str, *, shards: int) -> int:
    """The shard of an execution id (blake2b, never Python's randomised `hash`).

    A root execution's shard comes from its id; a child is placed in its parent's shard and a
    continue-as-new run in its chain's (the engine passes that shard on, it does not recompute it).
    """
    check_shard_count(shards)
    digest = hashlib.blake2b(execution_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards
