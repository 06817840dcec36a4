"""Which engine replica owns which shard of the executions: the pure core of scale-out (issue 21).

Executions are partitioned into a fixed number of shards; each shard has one owner at a time,
which alone decides, dispatches and fires timers for its executions. Ownership itself is held
through an external lock with an expiry (a Kubernetes Lease per shard under the operator); this
module only says *who should* own what, from what one replica can see:

- `shard_of`: an execution's shard, stable across processes, versions and platforms (blake2b,
  never Python's randomised `hash`).
- `assign`: the whole map from the live members and the current holders. Balanced (counts differ
  by at most one), and sticky: a shard whose holder is a member and within its quota stays where
  it is, so a replica joining or leaving moves only the shards it must (a join moves exactly the
  newcomer's quota, a departure exactly the leaver's shards). Every replica computing it from the
  same view gets the same map; views that differ for a moment are harmless, because a shard is
  only taken once its lease is free.
- `plan`: what one replica does next: the shards to take, to keep and to hand over.

The glue (leases, draining a shard before its release, forwarding) lives beside its transport;
`runtime` never imports Kubernetes. See docs/architecture.md, "Scale-out".
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from ..model.shards import MAX_SHARDS, shard_of
from ..model.shards import check_shard_count as _check_count

__all__ = ["MAX_SHARDS", "ShardPlan", "assign", "plan", "shard_of"]


def _score(shard: int, member: str) -> bytes:
    """Rendezvous score: which member a free shard prefers, the same on every replica."""
    return hashlib.blake2b(f"{shard}\x00{member}".encode(), digest_size=8).digest()


def assign(*, shards: int, members: Collection[str], holders: Mapping[int, str]) -> dict[int, str]:
    """Every shard's owner among `members`, keeping current `holders` where balance allows.

    `holders` maps a shard to the member holding its lease now (shards free or held by a
    non-member are left out or ignored). No members: no owners.
    """
    _check_count(shards)
    live = sorted(set(members))
    if not live:
        return {}
    base, extra = divmod(shards, len(live))
    held: dict[str, list[int]] = {member: [] for member in live}
    for shard in range(shards):
        holder = holders.get(shard)
        if holder in held:
            held[holder].append(shard)
    # The members holding the most get the larger quotas, so balanced holdings never move.
    by_holding = sorted(live, key=lambda member: (-len(held[member]), member))
    quota = {member: base + (1 if rank < extra else 0) for rank, member in enumerate(by_holding)}
    owners: dict[int, str] = {}
    room = dict(quota)
    for member in live:
        # Over quota: keep the shards this member scores highest on, so the choice is stable.
        kept = sorted(held[member], key=lambda shard: _score(shard, member), reverse=True)[: quota[member]]
        for shard in kept:
            owners[shard] = member
        room[member] -= len(kept)
    for shard in range(shards):
        if shard in owners:
            continue
        chosen = max((member for member in live if room[member] > 0), key=lambda member: _score(shard, member))
        owners[shard] = chosen
        room[chosen] -= 1
    return dict(sorted(owners.items()))


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """One replica's next moves. `take` waits for each lease to be free; `hand_over` drains first."""

    take: frozenset[int]
    keep: frozenset[int]
    hand_over: frozenset[int]


def plan(*, me: str, owners: Mapping[int, str], held: Collection[int]) -> ShardPlan:
    """From the map `assign` gave and the shards this replica holds now, what it does next."""
    mine = frozenset(shard for shard, owner in owners.items() if owner == me)
    holding = frozenset(held)
    return ShardPlan(take=mine - holding, keep=mine & holding, hand_over=holding - mine)
