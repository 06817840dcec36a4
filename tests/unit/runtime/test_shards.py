"""The shard map: every shard one owner, balanced, and moved only when it must be."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cerebelum_operator.runtime.shards import MAX_SHARDS, assign, plan, shard_of

MEMBERS = st.lists(st.text("abcdefgh", min_size=1, max_size=4), min_size=1, max_size=9, unique=True)
SHARDS = st.integers(min_value=1, max_value=96)


def _balanced(owners: dict[int, str], *, shards: int, members: list[str]) -> bool:
    counts = Counter(owners.values())
    loads = [counts.get(member, 0) for member in members]
    return (
        sorted(owners) == list(range(shards)) and set(owners.values()) <= set(members) and max(loads) - min(loads) <= 1
    )


def test_an_executions_shard_is_the_same_in_every_process_and_spreads_over_all_shards() -> None:
    assert shard_of("order-1", shards=16) == shard_of("order-1", shards=16)
    # blake2b, not Python's salted hash: this value must never change between releases.
    assert (
        shard_of("order-1", shards=1024)
        == int.from_bytes(hashlib.blake2b(b"order-1", digest_size=8).digest(), "big") % 1024
    )
    spread = Counter(shard_of(f"execution-{i}", shards=8) for i in range(8_000))
    assert set(spread) == set(range(8)) and min(spread.values()) > 800


@pytest.mark.parametrize("count", [0, MAX_SHARDS + 1])
def test_a_shard_count_out_of_range_is_refused_naming_the_bounds(count: int) -> None:
    with pytest.raises(ValueError, match=f"between 1 and {MAX_SHARDS}"):
        shard_of("x", shards=count)
    with pytest.raises(ValueError, match="shard count"):
        assign(shards=count, members=["a"], holders={})


def test_no_members_means_no_owners() -> None:
    assert assign(shards=4, members=[], holders={0: "gone"}) == {}


@settings(max_examples=200, deadline=None)
@given(shards=SHARDS, members=MEMBERS, data=st.data())
def test_every_shard_gets_exactly_one_member_and_loads_differ_by_at_most_one(
    shards: int, members: list[str], data: st.DataObject
) -> None:
    anyone = st.sampled_from([*members, "departed"])
    holders = data.draw(st.dictionaries(st.integers(0, shards - 1), anyone))
    owners = assign(shards=shards, members=members, holders=holders)
    assert _balanced(owners, shards=shards, members=members)
    assert owners == assign(shards=shards, members=list(reversed(members)), holders=holders)


@settings(max_examples=200, deadline=None)
@given(shards=SHARDS, members=MEMBERS)
def test_a_balanced_map_stays_exactly_as_it_is(shards: int, members: list[str]) -> None:
    owners = assign(shards=shards, members=members, holders={})
    assert assign(shards=shards, members=members, holders=owners) == owners


@settings(max_examples=200, deadline=None)
@given(shards=SHARDS, members=MEMBERS)
def test_a_joining_replica_takes_only_its_own_quota_from_the_others(shards: int, members: list[str]) -> None:
    before = assign(shards=shards, members=members, holders={})
    after = assign(shards=shards, members=[*members, "newcomer"], holders=before)
    moved = {shard for shard in before if before[shard] != after[shard]}
    assert all(after[shard] == "newcomer" for shard in moved)
    assert len(moved) == shards // (len(members) + 1)


@settings(max_examples=200, deadline=None)
@given(shards=SHARDS, members=MEMBERS.filter(lambda members: len(members) > 1), data=st.data())
def test_a_departing_replica_moves_its_shards_and_no_others(
    shards: int, members: list[str], data: st.DataObject
) -> None:
    before = assign(shards=shards, members=members, holders={})
    leaver = data.draw(st.sampled_from(members))
    staying = [member for member in members if member != leaver]
    after = assign(shards=shards, members=staying, holders=before)
    assert {shard for shard in before if before[shard] != after[shard]} == {
        shard for shard, owner in before.items() if owner == leaver
    }
    assert _balanced(after, shards=shards, members=staying)


def test_a_replica_plans_to_take_what_is_assigned_to_it_and_hand_over_the_rest() -> None:
    owners = assign(shards=6, members=["a", "b"], holders={0: "a", 1: "a", 2: "a", 3: "a", 4: "b"})
    assert Counter(owners.values()) == {"a": 3, "b": 3}
    mine = plan(me="a", owners=owners, held={0, 1, 2, 3})
    assert mine.keep | mine.hand_over == {0, 1, 2, 3} and len(mine.hand_over) == 1 and not mine.take
    theirs = plan(me="b", owners=owners, held={4})
    assert theirs.keep == {4} and theirs.take == {5} | mine.hand_over and not theirs.hand_over
