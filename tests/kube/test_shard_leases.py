"""Shards held through real Leases: replicas join, die and leave; no shard is ever held twice.

Each replica is a `ShardKeeper` driven round by round against the real API server; time is one
`FakeClock` the test moves, so "a replica died" is "it stopped renewing and 16 fake seconds
passed", never a real wait.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from lightkube import AsyncClient, KubeConfig
from lightkube.resources.coordination_v1 import Lease

from cerebelum_operator.kube.shard_leases import GROUP_LABEL, ShardKeeper
from cerebelum_operator.runtime import FakeClock
from tests.support.control_plane import ControlPlane

pytestmark = pytest.mark.timeout(120)

SHARDS = 8


@pytest.fixture
async def client(control_plane: ControlPlane) -> AsyncIterator[AsyncClient]:
    assert control_plane.kubeconfig is not None
    api = AsyncClient(config=KubeConfig.from_file(control_plane.kubeconfig))
    try:
        yield api
    finally:
        await api.close()


class Replica:
    """A keeper and what it was told: shards taken, handed over, lost."""

    def __init__(self, client: AsyncClient, namespace: str, name: str, clock: FakeClock) -> None:
        self.taken: list[int] = []
        self.handed_over: list[int] = []
        self.lost: list[int] = []

        async def take(shard: int) -> None:
            self.taken.append(shard)

        async def hand_over(shard: int) -> None:
            self.handed_over.append(shard)

        self.keeper = ShardKeeper(
            client,
            namespace=namespace,
            group="cerebelum",
            identity=name,
            shards=SHARDS,
            on_take=take,
            on_hand_over=hand_over,
            on_lost=self.lost.append,
            lease_duration_s=15,
            renew_every_s=5,
            clock=clock,
        )

    @property
    def held(self) -> set[int]:
        return self.keeper.held


async def _rounds(replicas: list[Replica], *, until: Callable[[], bool], clock: FakeClock) -> None:
    """Round after round, each replica in turn, checking after every move that nothing is held twice."""
    for _ in range(10):
        for replica in replicas:
            await replica.keeper.round()
            _assert_disjoint(replicas)
        if until():
            return
        await clock.advance(5)
    raise AssertionError(f"not settled: {[sorted(r.held) for r in replicas]}")


def _assert_disjoint(replicas: list[Replica]) -> None:
    seen: set[int] = set()
    for replica in replicas:
        assert not seen & replica.held, [sorted(r.held) for r in replicas]
        seen |= replica.held


async def _holders(client: AsyncClient, namespace: str) -> dict[str, str | None]:
    return {
        lease.metadata.name: lease.spec.holderIdentity
        async for lease in client.list(Lease, namespace=namespace, labels={GROUP_LABEL: "cerebelum"})
        if lease.metadata and lease.metadata.name and lease.spec
    }


async def test_a_second_replica_gets_half_the_shards_and_a_dead_one_loses_them_to_the_living(
    client: AsyncClient, namespace: str
) -> None:
    clock = FakeClock()
    a, b = Replica(client, namespace, "replica-a", clock), Replica(client, namespace, "replica-b", clock)

    await _rounds([a], until=lambda: len(a.held) == SHARDS, clock=clock)
    assert sorted(a.taken) == list(range(SHARDS))
    holders = await _holders(client, namespace)
    assert (
        holders[f"cerebelum-shard-{SHARDS - 1}"] == "replica-a" and holders["cerebelum-member-replica-a"] == "replica-a"
    )

    await _rounds([b, a], until=lambda: len(a.held) == len(b.held) == SHARDS // 2, clock=clock)
    assert sorted(a.handed_over) == sorted(b.taken) == sorted(b.held)  # exactly the newcomer's share moved
    assert not a.lost and not b.lost

    # b stops renewing (SIGKILL, a partition): a waits out the Lease, then takes b's shards.
    b_shards = set(b.held)
    for _ in range(4):
        await a.keeper.round()
        assert not a.held & b_shards, "taken before b's Lease could have run out"
        await clock.advance(4)
    await _rounds([a], until=lambda: len(a.held) == SHARDS, clock=clock)
    # b wakes up from its pause: it must drop what it could no longer renew, without a round.
    b.keeper.drop_untrusted()
    assert set(b.lost) == b_shards and not b.held


async def test_a_replica_leaving_cleanly_hands_its_shards_over_at_once(client: AsyncClient, namespace: str) -> None:
    clock = FakeClock()
    replicas = [Replica(client, namespace, f"replica-{n}", clock) for n in "abc"]
    await _rounds(replicas, until=lambda: sorted(len(r.held) for r in replicas) == [2, 3, 3], clock=clock)
    leaver, *staying = replicas
    gone, earlier = set(leaver.held), len(leaver.handed_over)
    await leaver.keeper.leave()
    assert sorted(leaver.handed_over[earlier:]) == sorted(gone) and not leaver.held
    # No clock movement: the Leases are released, not left to expire.
    for replica in staying:
        await replica.keeper.round()
    for replica in staying:
        await replica.keeper.round()
    assert staying[0].held | staying[1].held == set(range(SHARDS))
    assert sorted(len(r.held) for r in staying) == [4, 4]
    _assert_disjoint(staying)


def test_a_name_that_is_no_dns_label_is_refused(client: AsyncClient) -> None:
    with pytest.raises(ValueError, match="DNS label"):
        Replica(client, "default", "Replica_A", FakeClock())
