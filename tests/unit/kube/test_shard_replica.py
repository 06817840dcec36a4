"""Adopting the objects of a shard that arrived at this replica (`kube/shard_replica.ShardObjects`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from cerebelum_operator.kube.bookkeeping import ExecutionsInMemory
from cerebelum_operator.kube.client import Execution
from cerebelum_operator.kube.shard_replica import ShardObjects
from cerebelum_operator.kube.shard_watch import ShardWatch
from cerebelum_operator.kube.views import ObjectView, Outcome
from cerebelum_operator.model.shards import shard_of
from cerebelum_operator.runtime import FakeClock

SHARDS = 16


def uid_in(shard: int, skip: int = 0) -> str:
    found = (f"uid-{i}" for i in range(100_000) if shard_of(f"uid-{i}", shards=SHARDS) == shard)
    for _ in range(skip):
        next(found)
    return next(found)


def execution(name: str, uid: str, phase: str | None = None) -> dict[str, Any]:
    status = {"phase": phase} if phase else {}
    return {"metadata": {"namespace": "ns", "name": name, "uid": uid}, "spec": {"workflow": "w"}, "status": status}


class Api:
    def __init__(self, executions: list[dict[str, Any]]) -> None:
        self.executions = executions
        self.patched: list[tuple[str, dict[str, Any]]] = []

    async def list_labelled(self, resource: type[Any], namespaces: tuple[str, ...], **_: Any) -> AsyncIterator[Any]:
        for obj in self.executions if resource is Execution else []:
            yield obj

    async def patch_status(self, ref: Any, status: dict[str, Any]) -> str:
        self.patched.append((ref.name, status))
        return "1"


class Writes:
    async def take(self) -> None:
        return None


class Reconciler:
    """Starts an execution only once `together` of them are being started at once."""

    def __init__(self, together: int) -> None:
        self.writes = Writes()
        self.started: list[str] = []
        self.in_flight = 0
        self.most_at_once = 0
        self._together = together
        self._all_in = asyncio.Event()

    async def execution_seen(self, view: ObjectView, *, first_attempt: bool) -> Outcome:
        self.in_flight += 1
        self.most_at_once = max(self.most_at_once, self.in_flight)
        if self.in_flight >= self._together:
            self._all_in.set()
        await asyncio.wait_for(self._all_in.wait(), timeout=30)
        self.in_flight -= 1
        self.started.append(view.name)
        return Outcome(status={"phase": "Running"})

    async def approval_created(self, view: ObjectView) -> Outcome:
        return Outcome()

    signal_created = approval_created


async def test_the_executions_of_an_arriving_shard_are_adopted_several_at_once_and_only_its_own() -> None:
    mine = [execution(f"run-{i}", uid_in(3, i)) for i in range(10)]
    others = [execution("other", uid_in(4)), execution("done", uid_in(3, 20), phase="Succeeded")]
    api = Api([*mine, *others])
    reconciler = Reconciler(together=10)
    watch = ShardWatch(shards=SHARDS, owned=lambda: {3})
    seen: list[str] = []
    objects = ShardObjects(reconciler, api, watch, ExecutionsInMemory(), clock=FakeClock())  # type: ignore[arg-type]
    objects.on_seen = seen.append

    await objects.adopt({3})

    # One by one, the first would wait for the tenth for ever (30 s, then fail): they ran together.
    assert reconciler.most_at_once == 10
    assert sorted(reconciler.started) == sorted(f"run-{i}" for i in range(10))
    assert sorted(name for name, _ in api.patched) == sorted(reconciler.started)
    assert sorted(seen) == sorted(obj["metadata"]["uid"] for obj in mine)
    assert objects.adopted == 10
    assert watch.target_shard("ns", "other") == 4, "every listed Execution is known to the filter from now on"
