"""Leader election by a Lease, against a fake API server that keeps Leases with resourceVersions.

Time is a `FakeClock` shared by the electors and the fake server: a test lets fake seconds pass
(`let_pass`) or moves the clock until what it expects happened, never sleeping in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import Status
from lightkube.resources.coordination_v1 import Lease

from cerebelum_operator.kube.leader import LeaseElector, micro_time
from cerebelum_operator.runtime import FakeClock
from tests.support.waiting import advance_until, eventually

NAMESPACE, NAME = "cerebelum", "cerebelum-operator"


def api_error(code: int) -> ApiError:
    return ApiError(status=Status(code=code, message=f"HTTP {code}", reason="Testing"))


@dataclass
class Write:
    holder: str | None
    at: float


@dataclass
class FakeApiServer:
    """Leases by (namespace, name); every write bumps the resourceVersion, a stale one is a 409."""

    clock: FakeClock
    leases: dict[tuple[str, str], Lease] = field(default_factory=dict)
    version: int = 0
    writes: list[Write] = field(default_factory=list)

    def store(self, lease: Lease) -> None:
        assert lease.metadata is not None and lease.metadata.name and lease.metadata.namespace
        self.version += 1
        stored = copy.deepcopy(lease)
        assert stored.metadata is not None
        stored.metadata.resourceVersion = str(self.version)
        self.leases[(stored.metadata.namespace, stored.metadata.name)] = stored  # type: ignore[index]
        self.writes.append(Write(stored.spec.holderIdentity if stored.spec else None, self.clock.now_s()))

    def lease(self) -> Lease:
        return self.leases[(NAMESPACE, NAME)]

    def holder(self) -> str | None:
        spec = self.lease().spec
        return spec.holderIdentity if spec else None

    def last_write_by(self, holder: str) -> float:
        return max(w.at for w in self.writes if w.holder == holder)


class FakeClient:
    """One instance's view of the API server, which can fail or hang on its own."""

    def __init__(self, server: FakeApiServer) -> None:
        self.server = server
        self.failure: Exception | None = None
        self.hang = False
        self.calls = 0

    async def _call(self) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.failure is not None:
            raise self.failure

    async def get(self, resource: type[Any], name: str, *, namespace: str) -> Lease:
        assert resource is Lease
        await self._call()
        lease = self.server.leases.get((namespace, name))
        if lease is None:
            raise api_error(404)
        return copy.deepcopy(lease)

    async def create(self, lease: Lease) -> Lease:
        await self._call()
        assert lease.metadata is not None
        if (lease.metadata.namespace, lease.metadata.name) in self.server.leases:
            raise api_error(409)
        self.server.store(lease)
        return copy.deepcopy(lease)

    async def replace(self, lease: Lease) -> Lease:
        await self._call()
        assert lease.metadata is not None
        stored = self.server.leases.get((lease.metadata.namespace, lease.metadata.name))  # type: ignore[arg-type]
        if stored is None:
            raise api_error(404)
        assert stored.metadata is not None
        if lease.metadata.resourceVersion != stored.metadata.resourceVersion:
            raise api_error(409)
        self.server.store(lease)
        return copy.deepcopy(lease)


STEP = 0.01  # fake seconds per move of the clock: finer than every interval the tests set


async def let_pass(clock: FakeClock, seconds: float) -> None:
    """Let `seconds` of fake time pass in small steps, so every loop on the clock runs in between."""
    until = clock.now_s() + seconds
    await advance_until(clock, lambda: clock.now_s() >= until - 1e-9, step=STEP, what=f"{seconds} fake seconds")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> FakeApiServer:
    return FakeApiServer(clock)


ElectorFactory = Callable[..., tuple[LeaseElector, FakeClient]]


@pytest.fixture
def elector(server: FakeApiServer, clock: FakeClock) -> ElectorFactory:
    def make(identity: str, **options: Any) -> tuple[LeaseElector, FakeClient]:
        client = FakeClient(server)
        settings = {"lease_duration_s": 1, "renew_every_s": 0.1, "retry_every_s": 0.05, "clock": clock, **options}
        elector = LeaseElector(client, namespace=NAMESPACE, name=NAME, identity=identity, **settings)  # type: ignore[arg-type]
        return elector, client

    return make


@pytest.fixture
async def tasks() -> AsyncIterator[list[asyncio.Task[Any]]]:
    """Background tasks of a test, cancelled at its end."""
    started: list[asyncio.Task[Any]] = []
    yield started
    for task in started:
        task.cancel()
    for task in started:
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Lost:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.at: float | None = None
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        self.at = self.clock.now_s()


async def test_the_first_instance_creates_the_lease_and_holds_it(
    server: FakeApiServer, clock: FakeClock, elector: ElectorFactory
) -> None:
    a, _ = elector("a", lease_duration_s=15)
    await asyncio.wait_for(a.acquire(), 30)  # the fake clock stands still: no waiting on it
    spec = server.lease().spec
    assert spec is not None
    assert spec.holderIdentity == "a"
    assert spec.leaseDurationSeconds == 15
    assert spec.leaseTransitions == 0
    assert spec.acquireTime is not None and spec.renewTime is not None
    assert len(server.writes) == 1


async def test_a_holder_renewing_keeps_the_lease_and_a_second_instance_waits(
    server: FakeApiServer, clock: FakeClock, elector: ElectorFactory, tasks: list[asyncio.Task[Any]]
) -> None:
    a, _ = elector("a", lease_duration_s=2)
    b, b_client = elector("b", lease_duration_s=2)
    await a.acquire()
    lost = Lost(clock)
    tasks.append(asyncio.create_task(a.hold(lost)))
    b_acquiring = asyncio.create_task(b.acquire())
    tasks.append(b_acquiring)
    # Longer than the lease: only a's renewals keep b out.
    await let_pass(clock, 3.0)
    assert not b_acquiring.done()
    assert server.holder() == "a"
    assert len([w for w in server.writes if w.holder == "a"]) >= 5
    assert b_client.calls >= 5
    assert lost.calls == 0


async def test_a_second_instance_takes_over_once_the_holder_stops_renewing_for_the_lease_duration(
    server: FakeApiServer, clock: FakeClock, elector: ElectorFactory, tasks: list[asyncio.Task[Any]]
) -> None:
    a, _ = elector("a")
    b, _ = elector("b")
    await a.acquire()
    holding = asyncio.create_task(a.hold(Lost(clock)))
    tasks.append(holding)
    b_acquiring = asyncio.create_task(b.acquire())
    tasks.append(b_acquiring)
    await let_pass(clock, 0.5)
    holding.cancel()
    await advance_until(clock, b_acquiring.done, step=STEP, what="b holding the lease")
    assert server.holder() == "b"
    spec = server.lease().spec
    assert spec is not None and spec.leaseTransitions == 1 and spec.leaseDurationSeconds == 1
    # b saw a's last renewal only after it was written, and waited a whole lease from then.
    assert server.last_write_by("b") - server.last_write_by("a") >= 1.0


async def test_the_same_identity_reacquires_at_once_after_a_restart(
    server: FakeApiServer, clock: FakeClock, elector: ElectorFactory
) -> None:
    before, _ = elector("a", lease_duration_s=30)
    await before.acquire()
    after, _ = elector("a", lease_duration_s=30)
    await asyncio.wait_for(after.acquire(), 30)  # the fake clock stands still: no waiting on it
    spec = server.lease().spec
    assert spec is not None and spec.holderIdentity == "a" and spec.leaseTransitions == 0
    assert len(server.writes) == 2


async def test_releasing_lets_another_instance_take_over_at_once(
    server: FakeApiServer, clock: FakeClock, elector: ElectorFactory, tasks: list[asyncio.Task[Any]]
) -> None:
    a, _ = elector("a", lease_duration_s=30)
    b, _ = elector("b", lease_duration_s=30)
    await a.acquire()
    b_acquiring = asyncio.create_task(b.acquire())
    tasks.append(b_acquiring)
    await let_pass(clock, 0.3)
    assert not b_acquiring.done()
    await a.release()
    assert server.holder() is None
    released_at = clock.now_s()
    await advance_until(clock, b_acquiring.done, step=STEP, what="b holding the lease")
    assert clock.now_s() - released_at <= 0.05 + STEP, "b waited longer than its retry interval"
    spec = server.lease().spec
    assert spec is not None
    assert (spec.holderIdentity, spec.leaseTransitions, spec.leaseDurationSeconds) == ("b", 1, 30)


async def test_releasing_a_lease_held_by_another_instance_changes_nothing(
    server: FakeApiServer, clock: FakeClock, elector: ElectorFactory
) -> None:
    a, _ = elector("a", lease_duration_s=30)
    b, _ = elector("b", lease_duration_s=30)
    await a.acquire()
    writes = len(server.writes)
    await b.release()
    assert server.holder() == "a"
    assert len(server.writes) == writes


async def test_releasing_when_the_api_fails_does_not_raise(
    server: FakeApiServer, clock: FakeClock, elector: ElectorFactory
) -> None:
    a, a_client = elector("a", lease_duration_s=30)
    await a.acquire()
    a_client.failure = api_error(500)
    await a.release()
    assert server.holder() == "a"


async def test_two_instances_racing_for_a_free_lease_never_both_win(
    server: FakeApiServer, clock: FakeClock, elector: ElectorFactory, tasks: list[asyncio.Task[Any]]
) -> None:
    instances = [elector(name, lease_duration_s=30)[0] for name in ("a", "b", "c")]
    acquiring = [asyncio.create_task(e.acquire()) for e in instances]
    tasks.extend(acquiring)
    await let_pass(clock, 0.5)
    winners = [e.identity for e, t in zip(instances, acquiring, strict=True) if t.done()]
    assert winners == [server.holder()]


@pytest.mark.parametrize(
    "failure",
    [api_error(500), ConnectionError("no route to host"), "taken"],
    ids=["api-error", "connection-error", "taken-by-another"],
)
async def test_hold_calls_on_lost_when_renewals_fail_for_longer_than_the_lease_allows(
    server: FakeApiServer,
    clock: FakeClock,
    elector: ElectorFactory,
    tasks: list[asyncio.Task[Any]],
    failure: Exception | str,
) -> None:
    a, a_client = elector("a", lease_duration_s=1, renew_every_s=0.1)
    await a.acquire()
    lost = Lost(clock)
    holding = asyncio.create_task(a.hold(lost))
    tasks.append(holding)
    await let_pass(clock, 0.3)
    assert lost.calls == 0
    if failure == "taken":
        # Another holder wrote the lease (as after a partition): a's renewals now find it held.
        taken = copy.deepcopy(server.lease())
        assert taken.spec is not None
        taken.spec.holderIdentity = "b"
        taken.spec.leaseDurationSeconds = 30
        server.store(taken)
    else:
        assert isinstance(failure, Exception)
        a_client.failure = failure
    last_renewal = server.last_write_by("a")
    await advance_until(clock, lambda: lost.calls, step=STEP, what="on_lost called")
    await eventually(holding.done, what="hold returning")
    assert lost.calls == 1
    assert lost.at is not None and lost.at - last_renewal >= 1 - 0.1


async def test_hold_keeps_the_lease_through_failures_shorter_than_the_lease_allows(
    server: FakeApiServer, clock: FakeClock, elector: ElectorFactory, tasks: list[asyncio.Task[Any]]
) -> None:
    a, a_client = elector("a", lease_duration_s=3, renew_every_s=0.1)
    await a.acquire()
    lost = Lost(clock)
    holding = asyncio.create_task(a.hold(lost))
    tasks.append(holding)
    await let_pass(clock, 0.3)
    a_client.failure = api_error(503)
    await let_pass(clock, 0.4)
    failed_until = clock.now_s()
    a_client.failure = None
    await let_pass(clock, 0.5)
    assert lost.calls == 0
    assert not holding.done()
    assert server.holder() == "a"
    assert server.last_write_by("a") > failed_until


async def test_hold_does_nothing_while_renewals_succeed(
    server: FakeApiServer, clock: FakeClock, elector: ElectorFactory, tasks: list[asyncio.Task[Any]]
) -> None:
    a, _ = elector("a", lease_duration_s=1, renew_every_s=0.1)
    await a.acquire()
    lost = Lost(clock)
    holding = asyncio.create_task(a.hold(lost))
    tasks.append(holding)
    await let_pass(clock, 1.5)
    assert lost.calls == 0 and not holding.done()
    assert len([w for w in server.writes if w.holder == "a"]) >= 5


async def test_hold_calls_on_lost_in_time_even_when_a_renewal_hangs(
    server: FakeApiServer, clock: FakeClock, elector: ElectorFactory, tasks: list[asyncio.Task[Any]]
) -> None:
    a, a_client = elector("a", lease_duration_s=1, renew_every_s=0.1)
    await a.acquire()
    lost = Lost(clock)
    tasks.append(asyncio.create_task(a.hold(lost)))
    await let_pass(clock, 0.3)
    a_client.hang = True
    last_renewal = server.last_write_by("a")
    await advance_until(clock, lambda: lost.calls or clock.now_s() - last_renewal > 3.0, step=STEP, what="3 s")
    assert lost.at is not None, "on_lost was never called"
    assert lost.at - last_renewal <= 1.5


def test_a_renewal_on_a_whole_second_still_carries_a_fraction_the_api_server_accepts() -> None:
    """The API server refuses a MicroTime without one ("cannot parse "Z" as ".000000"")."""
    lease = Lease(spec=LeaseSpec(renewTime=micro_time(1_796_463_168_000)))
    assert lease.to_dict()["spec"]["renewTime"] == "2026-12-05T09:32:48.000001Z"
    assert micro_time(1_796_463_168_250).microsecond == 250_000
