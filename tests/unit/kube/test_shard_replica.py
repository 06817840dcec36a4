"""Adopting the objects of a shard that arrived at this replica (`kube/shard_replica.ShardObjects`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from cerebelum_operator.kube.bookkeeping import ExecutionsInMemory
from cerebelum_operator.kube.client import Execution, Schedule
from cerebelum_operator.kube.shard_replica import DELETION_ADOPTED_ANNOTATION, ShardObjects
from cerebelum_operator.kube.shard_watch import ShardWatch
from cerebelum_operator.kube.status_writer import FINALIZER
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


def deleted(obj: dict[str, Any], *, finalizers: tuple[str, ...] = (FINALIZER,)) -> dict[str, Any]:
    obj["metadata"] |= {"deletionTimestamp": "2026-12-06T01:24:21Z", "finalizers": list(finalizers)}
    return obj


class Api:
    def __init__(self, executions: list[dict[str, Any]], schedules: list[dict[str, Any]] | None = None) -> None:
        self.executions = executions
        self.schedules = schedules or []
        self.patched: list[tuple[str, dict[str, Any]]] = []
        self.marked: list[tuple[str, str, dict[str, Any]]] = []
        self.finalized: list[str] = []
        self.gone: set[str] = set()  # names deleted since they were listed

    async def list_labelled(self, resource: type[Any], namespaces: tuple[str, ...], **_: Any) -> AsyncIterator[Any]:
        for obj in {Execution: self.executions, Schedule: self.schedules}.get(resource, []):
            yield obj

    async def add_finalizer(self, ref: Any, finalizer: str) -> bool:
        assert finalizer == FINALIZER
        if ref.name in self.gone:
            return False
        self.finalized.append(ref.name)
        return True

    async def mark(self, ref: Any, *, annotations: dict[str, Any]) -> bool:
        self.marked.append((ref.kind, ref.name, annotations))
        return True

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
        self.api: Api | None = None  # to check what was written on the object before its start

    async def execution_seen(self, view: ObjectView, *, first_attempt: bool) -> Outcome:
        if self.api is not None:
            assert view.name in self.api.finalized, f"{view.name} started before kopf's finalizer was on it"
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


async def test_an_object_deleted_while_its_shard_had_no_owner_is_touched_for_kopf_and_never_started() -> None:
    # Its deletion event reached no replica's kopf (the owner was dead, the others filter it out), so
    # without a new event its finalizer stayed for ever and its execution ran on (chaos seed 1153821564).
    gone = deleted(execution("gone", uid_in(0)))
    gone_finished = deleted(execution("gone-finished", uid_in(0, 1), phase="Succeeded"))
    no_finalizer = deleted(execution("leaving", uid_in(0, 2)), finalizers=("someone.else/f",))
    live = execution("live", uid_in(0, 3))
    schedule = deleted({"metadata": {"namespace": "ns", "name": "nightly", "uid": "s-1"}, "spec": {}})
    api = Api([gone, gone_finished, no_finalizer, live], schedules=[schedule])
    reconciler = Reconciler(together=1)
    watch = ShardWatch(shards=SHARDS, owned=lambda: {0})
    objects = ShardObjects(reconciler, api, watch, ExecutionsInMemory(), clock=FakeClock())  # type: ignore[arg-type]

    await objects.adopt({0})

    assert reconciler.started == ["live"], "a deleted object is not started"
    assert sorted((kind, name) for kind, name, _ in api.marked) == [
        ("Execution", "gone"),
        ("Execution", "gone-finished"),
        ("Schedule", "nightly"),
    ]
    assert all(set(annotations) == {DELETION_ADOPTED_ANNOTATION} for _, _, annotations in api.marked)


async def test_an_adopted_execution_gets_kopfs_finalizer_before_it_starts_and_one_gone_meanwhile_is_not_started() -> (
    None
):
    # Created while its shard had no owner, no kopf ever put the finalizer on it: deleted after the
    # adoption started it, it went at once and its execution ran on (chaos seed 1153821564).
    new = execution("new", uid_in(5))
    handled = execution("handled", uid_in(5, 1))
    handled["metadata"]["finalizers"] = [FINALIZER]
    vanished = execution("vanished", uid_in(5, 2))
    api = Api([new, handled, vanished])
    api.gone.add("vanished")
    reconciler = Reconciler(together=1)
    reconciler.api = api
    api.finalized.append("handled")  # what kopf did, on another replica
    watch = ShardWatch(shards=SHARDS, owned=lambda: {5})
    objects = ShardObjects(reconciler, api, watch, ExecutionsInMemory(), clock=FakeClock())  # type: ignore[arg-type]

    await objects.adopt({5})

    assert sorted(reconciler.started) == ["handled", "new"]
    assert api.finalized == ["handled", "new"], "only the one without it got the finalizer"
