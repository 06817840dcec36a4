"""This replica's share of the shards, held through Kubernetes Leases (issue 21, scale-out).

The glue around `runtime.shards`: each replica renews a membership Lease of its own, lists the
group's Leases (one list per round, by label), asks `assign` for the map and `plan` for its next
moves, then hands over (after `on_hand_over` has drained the shard), renews, and takes free or
expired shard Leases (then `on_take`). Expiry is judged as in `kube/leader.py`: by this
instance's clock from when it last *saw* a record change, never by comparing wall clocks. A shard
this replica cannot renew before its Lease could have run out for the others is dropped
(`on_lost`), as the single leader exits today. Not yet wired into the engine: see
docs/architecture.md, "Scale-out".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.resources.coordination_v1 import Lease

from ..runtime import Clock, SystemClock
from ..runtime.shards import ShardPlan, assign, plan
from .leader import held_by, new_lease

__all__ = ["GROUP_LABEL", "KIND_LABEL", "ShardKeeper", "check_shard_names"]

log = logging.getLogger(__name__)

GROUP_LABEL = "cerebelum.io/shard-group"
KIND_LABEL = "cerebelum.io/lease-kind"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_shard_names(*, group: str, identity: str) -> None:
    """A shard group and a replica's identity name Leases: each a DNS label of at most 40 characters."""
    for what, name in (("group", group), ("identity", identity)):
        if not _NAME.match(name) or len(name) > 40:
            raise ValueError(f"a shard {what} is a DNS label of at most 40 characters, not {name!r}")


@dataclass(slots=True)
class _Seen:
    """A Lease's record as last seen, and when (this instance's clock) it last changed."""

    record: tuple[str | None, object]
    since_s: float


class ShardKeeper:
    def __init__(
        self,
        client: AsyncClient,
        *,
        namespace: str,
        group: str,
        identity: str,
        shards: int,
        on_take: Callable[[int], Awaitable[None]],
        on_hand_over: Callable[[int], Awaitable[None]],
        on_lost: Callable[[int], None],
        lease_duration_s: int = 15,
        renew_every_s: float = 5.0,
        clock: Clock | None = None,
        after_round: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        check_shard_names(group=group, identity=identity)
        self.client = client
        self.namespace = namespace
        self.group = group
        self.identity = identity
        self.shards = shards
        self.on_take = on_take
        self.on_hand_over = on_hand_over
        self.on_lost = on_lost
        self.lease_duration_s = lease_duration_s
        self.renew_every_s = renew_every_s
        self.clock = clock or SystemClock()
        self.after_round = after_round
        self.held: set[int] = set()
        self.last_round_ok = False  # whether the last round saw the group's Leases
        self._renewed_at: dict[int, float] = {}
        self._seen: dict[str, _Seen] = {}

    def member_lease(self, identity: str | None = None) -> str:
        return f"{self.group}-member-{identity or self.identity}"

    def shard_lease(self, shard: int) -> str:
        return f"{self.group}-shard-{shard}"

    async def run(self) -> None:
        """Keep this replica's share until cancelled; one round per `renew_every_s`."""
        while True:
            try:
                await self.round()
                self.last_round_ok = True
            except Exception as error:  # the API server down for a moment: try again next round
                self.last_round_ok = False
                log.warning("shard round failed: %s", error)
            self.drop_untrusted()
            if self.after_round is not None:
                try:
                    await self.after_round()
                except Exception:
                    log.exception("the work after a shard round failed; it runs again after the next")
            await self.clock.sleep(self.renew_every_s)

    async def leave(self) -> None:
        """A clean shutdown: hand every shard over and give up membership, so nobody waits."""
        for shard in sorted(self.held):
            await self.on_hand_over(shard)
            await self._release(self.shard_lease(shard))
        self.held.clear()
        await self._release(self.member_lease())

    async def round(self) -> ShardPlan:
        """One look at the group's Leases and the moves it calls for."""
        await self._renew_member()
        leases = await self._list()
        now = self.clock.now_s()
        members, holders = [self.identity], {}
        for name, lease in leases.items():
            spec = lease.spec or LeaseSpec()
            if not self._alive(name, spec, now):
                continue
            labels = (lease.metadata.labels if lease.metadata else None) or {}
            if labels.get(KIND_LABEL) == "member" and spec.holderIdentity:
                members.append(spec.holderIdentity)
            elif labels.get(KIND_LABEL) == "shard" and spec.holderIdentity:
                shard = _shard_number(name, prefix=f"{self.group}-shard-")
                if shard is not None and shard < self.shards:
                    holders[shard] = spec.holderIdentity
        moves = plan(
            me=self.identity, owners=assign(shards=self.shards, members=members, holders=holders), held=self.held
        )
        for shard in sorted(moves.hand_over):
            await self.on_hand_over(shard)
            await self._release(self.shard_lease(shard))
            self.held.discard(shard)
            self._renewed_at.pop(shard, None)
        for shard in sorted(moves.keep):
            if await self._claim(shard, leases.get(self.shard_lease(shard)), now=now):
                continue
            log.warning("shard %d was taken by another replica", shard)
            self.held.discard(shard)
            self._renewed_at.pop(shard, None)
            self.on_lost(shard)
        for shard in sorted(moves.take):
            if await self._claim(shard, leases.get(self.shard_lease(shard)), now=now):
                self.held.add(shard)
                await self.on_take(shard)
        return moves

    def _alive(self, name: str, spec: LeaseSpec, now: float) -> bool:
        """Held, and seen to change within its duration (or held by this replica)."""
        if not spec.holderIdentity:
            return False
        record = (spec.holderIdentity, spec.renewTime)
        seen = self._seen.get(name)
        if seen is None or seen.record != record:
            self._seen[name] = seen = _Seen(record, now)
        if spec.holderIdentity == self.identity:
            return True
        return now - seen.since_s < (spec.leaseDurationSeconds or self.lease_duration_s)

    def drop_untrusted(self) -> None:
        """Stop working on a shard whose Lease may have run out for the others."""
        trust = self.lease_duration_s - self.renew_every_s
        for shard in sorted(self.held):
            if self.clock.now_s() - self._renewed_at.get(shard, 0.0) >= trust:
                log.error("could not renew shard %d in time; dropping it", shard)
                self.held.discard(shard)
                self._renewed_at.pop(shard, None)
                self.on_lost(shard)

    async def _list(self) -> dict[str, Lease]:
        found: dict[str, Lease] = {}
        async for lease in self.client.list(Lease, namespace=self.namespace, labels={GROUP_LABEL: self.group}):
            if lease.metadata is not None and lease.metadata.name:
                found[lease.metadata.name] = lease
        return found

    async def _renew_member(self) -> None:
        name = self.member_lease()
        try:
            lease = await self.client.get(Lease, name, namespace=self.namespace)
        except ApiError as error:
            if error.status.code != 404:
                raise
            lease = None
        await self._write(name, lease, kind="member")

    async def _claim(self, shard: int, lease: Lease | None, *, now: float) -> bool:
        """Renew a shard this replica holds, or take one that is free or expired."""
        name = self.shard_lease(shard)
        if lease is not None:
            spec = lease.spec or LeaseSpec()
            if spec.holderIdentity not in (None, "", self.identity) and self._alive(name, spec, now):
                return False
        if await self._write(name, lease, kind="shard"):
            self._renewed_at[shard] = self.clock.now_s()
            return True
        return False

    async def _write(self, name: str, lease: Lease | None, *, kind: str) -> bool:
        """Create or replace `name` as held by this replica; False when another wrote first (409)."""
        labels = {GROUP_LABEL: self.group, KIND_LABEL: kind}
        now_ms = self.clock.now_ms()
        try:
            if lease is None:
                fresh = new_lease(
                    name=name,
                    namespace=self.namespace,
                    identity=self.identity,
                    duration_s=self.lease_duration_s,
                    now_ms=now_ms,
                    labels=labels,
                )
                await self.client.create(fresh)
                return True
            await self.client.replace(
                held_by(lease, identity=self.identity, duration_s=self.lease_duration_s, now_ms=now_ms)
            )
            return True
        except ApiError as conflict:
            if conflict.status.code in (404, 409):
                return False
            raise

    async def _release(self, name: str) -> None:
        try:
            lease = await self.client.get(Lease, name, namespace=self.namespace)
            if lease.spec is not None and lease.spec.holderIdentity == self.identity:
                lease.spec.holderIdentity = None
                lease.spec.leaseDurationSeconds = 1
                await self.client.replace(lease)
        except ApiError as error:
            log.warning("could not release %s: %s", name, error)


def _shard_number(name: str, *, prefix: str) -> int | None:
    tail = name.removeprefix(prefix)
    return int(tail) if tail != name and tail.isdigit() else None
