"""Readiness that means caught up (issue 21): every unfinished Execution listed at start handled once by
kopf's handler and its status projected once; finished ones, and ones deleted before kopf saw them, are
not waited for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

from cerebelum_operator.kube.catch_up import CatchUp
from cerebelum_operator.kube.client import KubeApi
from cerebelum_operator.kube.expirer import FINISHED_LABEL
from cerebelum_operator.kube.status_writer import StatusWriter
from cerebelum_operator.runtime.clock import FakeClock
from tests.support.waiting import advance_until


@dataclass
class FakeApi:
    objects: dict[str, str] = field(default_factory=dict)  # uid -> phase, none labelled finished
    lists: int = 0

    async def list_labelled(
        self, resource: type[Any], namespaces: tuple[str, ...], *, labels: dict[str, Any], page: int = 500
    ) -> AsyncIterator[dict[str, Any]]:
        assert (
            list(labels) == [FINISHED_LABEL] and labels[FINISHED_LABEL].encode(FINISHED_LABEL) == f"!{FINISHED_LABEL}"
        )
        self.lists += 1
        for uid, phase in list(self.objects.items()):
            yield {"metadata": {"uid": uid}, "status": {"phase": phase}}


@dataclass
class FakeWriter:
    unwritten: set[str] = field(default_factory=set)

    def unwritten_ids(self) -> set[str]:
        return set(self.unwritten)


def done(catch_up: CatchUp) -> bool:
    return catch_up.done


async def test_caught_up_once_each_unfinished_one_was_handled_and_projected_not_waiting_for_finished_ones() -> None:
    api = FakeApi({"run": "Sleeping", "new": "", "old-finished": "Succeeded"})
    writer = FakeWriter()
    clock = FakeClock()
    catch_up = CatchUp(cast(KubeApi, api), cast(StatusWriter, writer), clock=clock, poll_s=0.005, recheck_s=60)
    catch_up.seen("new")  # kopf may handle one before the list is complete
    running = asyncio.create_task(catch_up.run())
    await advance_until(clock, lambda: catch_up.pending == 1, step=0.005, what="the list")
    assert not done(catch_up)
    writer.unwritten = {"run", "new"}
    catch_up.seen("run")
    for _ in range(10):  # ten polls on the fake clock (advance lets each woken poll run)
        await clock.advance(0.005)
    assert not done(catch_up), "handled, but its status is not projected yet"
    writer.unwritten = {"new-since"}  # tracked after: not waited for
    await advance_until(clock, running.done, step=0.005, what="caught up")
    assert catch_up.done and catch_up.awaited == 2


async def test_one_deleted_before_kopf_saw_it_is_not_waited_for() -> None:
    api = FakeApi({"gone": "Running"})
    clock = FakeClock()
    catch_up = CatchUp(cast(KubeApi, api), cast(StatusWriter, FakeWriter()), clock=clock, poll_s=0.005, recheck_s=0.05)
    running = asyncio.create_task(catch_up.run())
    await advance_until(clock, lambda: catch_up.pending == 1, step=0.005, what="the list")
    del api.objects["gone"]
    await advance_until(clock, running.done, step=0.005, what="caught up after a re-list")
    assert catch_up.done and api.lists >= 2
