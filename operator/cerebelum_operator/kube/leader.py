"""One active operator at a time, by a coordination.k8s.io Lease (as client-go's leader election).

Only the holder runs the engine, so two replicas never dispatch the same task. Expiry is judged
by this instance's own clock (the injected `Clock`: monotonic in production) from when it last
*saw* the record change, never by comparing wall clocks across machines. A holder that cannot
renew before its lease runs out stops itself (`on_lost`): it is better to exit and be restarted
than to dispatch beside a new leader.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from ..runtime import Clock, SystemClock
from ..runtime.deadline import wait_for

__all__ = ["LeaseElector", "held_by", "micro_time", "new_lease"]

log = logging.getLogger(__name__)


def micro_time(now_ms: int) -> datetime:
    """`now_ms` as a Lease's MicroTime. On a whole second lightkube writes no fraction at all
    ("...:48Z"), which the API server refuses for a MicroTime field, so such an instant is moved
    a microsecond on: one renewal in a thousand failed that way, and under load the retry came
    too late to keep the Lease."""
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    return now if now.microsecond else now.replace(microsecond=1)


def new_lease(
    *, name: str, namespace: str, identity: str, duration_s: int, now_ms: int, labels: dict[str, str] | None = None
) -> Lease:
    """A Lease held by `identity` from `now_ms`, to create."""
    now = micro_time(now_ms)
    return Lease(
        metadata=ObjectMeta(name=name, namespace=namespace, labels=labels),
        spec=LeaseSpec(
            holderIdentity=identity,
            leaseDurationSeconds=duration_s,
            acquireTime=now,
            renewTime=now,
            leaseTransitions=0,
        ),
    )


def held_by(lease: Lease, *, identity: str, duration_s: int, now_ms: int) -> Lease:
    """`lease` renewed by `identity` at `now_ms` (taken over, counting a transition, if another held it)."""
    now = micro_time(now_ms)
    spec = lease.spec or LeaseSpec()
    if spec.holderIdentity != identity:
        spec.leaseTransitions = (spec.leaseTransitions or 0) + 1
        spec.acquireTime = now
    spec.holderIdentity = identity
    spec.leaseDurationSeconds = duration_s
    spec.renewTime = now
    lease.spec = spec
    return lease


class LeaseElector:
    def __init__(
        self,
        client: AsyncClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration_s: int = 15,
        renew_every_s: float = 5.0,
        retry_every_s: float = 2.0,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration_s = lease_duration_s
        self.renew_every_s = renew_every_s
        self.retry_every_s = retry_every_s
        self.clock = clock or SystemClock()
        self._observed: tuple[str | None, object] | None = None
        self._observed_at = 0.0
        self._renewed_at = 0.0

    async def acquire(self) -> None:
        """Return once this instance holds the lease; waits out a live holder."""
        announced = False
        while not await self._try_acquire_or_renew():
            if not announced:
                log.info("waiting for lease %s/%s to be free", self.namespace, self.name)
                announced = True
            await self.clock.sleep(self.retry_every_s)
        log.info("holding lease %s/%s as %s", self.namespace, self.name, self.identity)

    async def hold(self, on_lost: Callable[[], None]) -> None:
        """Renew until cancelled; call `on_lost` before the lease could expire for the others.

        Every renewal has a deadline, so a request that hangs (a partition with no reset) cannot
        keep this instance believing it leads after its lease ran out.
        """
        while True:
            await self.clock.sleep(self.renew_every_s)
            trust_until = self._renewed_at + self.lease_duration_s - self.renew_every_s
            try:
                renewed = await wait_for(
                    self._try_acquire_or_renew(), within=max(0.05, trust_until - self.clock.now_s()), clock=self.clock
                )
            except TimeoutError:
                log.warning("lease renewal did not answer in time")
                renewed = False
            except Exception as error:
                log.warning("lease renewal failed: %s", error)
                renewed = False
            if renewed:
                continue
            if self.clock.now_s() >= trust_until:
                log.error("lost lease %s/%s; stopping so that no two instances dispatch", self.namespace, self.name)
                on_lost()
                return

    async def release(self) -> None:
        """Hand the lease over at once on a clean shutdown instead of letting it expire."""
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
            if lease.spec is not None and lease.spec.holderIdentity == self.identity:
                lease.spec.holderIdentity = None
                lease.spec.leaseDurationSeconds = 1
                await self.client.replace(lease)
        except Exception as error:
            log.warning("could not release lease: %s", error)

    async def _try_acquire_or_renew(self) -> bool:
        now_ms = self.clock.now_ms()
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
        except ApiError as error:
            if error.status.code != 404:
                raise
            fresh = new_lease(
                name=self.name,
                namespace=self.namespace,
                identity=self.identity,
                duration_s=self.lease_duration_s,
                now_ms=now_ms,
            )
            return await self._write(self.client.create(fresh))
        spec = lease.spec or LeaseSpec()
        record = (spec.holderIdentity, spec.renewTime)
        if self._observed != record:
            self._observed = record
            self._observed_at = self.clock.now_s()
        held_by_other = spec.holderIdentity not in (None, "", self.identity)
        duration = spec.leaseDurationSeconds or self.lease_duration_s
        if held_by_other and self.clock.now_s() - self._observed_at < duration:
            return False
        renewed = held_by(lease, identity=self.identity, duration_s=self.lease_duration_s, now_ms=now_ms)
        return await self._write(self.client.replace(renewed))

    async def _write(self, request: Awaitable[object]) -> bool:
        """Create or replace the Lease; a 409 means another instance wrote first."""
        try:
            await request
        except ApiError as conflict:
            if conflict.status.code == 409:
                return False
            raise
        self._renewed_at = self.clock.now_s()
        return True
