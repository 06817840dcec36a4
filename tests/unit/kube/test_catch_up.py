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
from cerebelum_operator.runtime import SystemClock


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


async def until(check: Any) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never")


async def test_caught_up_once_each_unfinished_one_was_handled_and_projected_not_waiting_for_finished_ones() -> None:
    api = FakeApi({"run": "Sleeping", "new": "", "old-finished": "Succeeded"})
    writer = FakeWriter()
    catch_up = CatchUp(cast(KubeApi, api), cast(StatusWriter, writer), clock=SystemClock(), poll_s=0.005, recheck_s=60)
    catch_up.seen("new")  # kopf may handle one before the list is complete
    running = asyncio.create_task(catch_up.run())
    await until(lambda: catch_up.pending == 1)
    assert not done(catch_up)
    writer.unwritten = {"run", "new"}
    catch_up.seen("run")
    await asyncio.sleep(0.05)
    assert not done(catch_up), "handled, but its status is not projected yet"
    writer.unwritten = {"new-since"}  # tracked after: not waited for
    await asyncio.wait_for(running, 1)
    assert catch_up.done and catch_up.awaited == 2


async def test_one_deleted_before_kopf_saw_it_is_not_waited_for() -> None:
    api = FakeApi({"gone": "Running"})
    catch_up = CatchUp(
        cast(KubeApi, api), cast(StatusWriter, FakeWriter()), clock=SystemClock(), poll_s=0.005, recheck_s=0.05
    )
    running = asyncio.create_task(catch_up.run())
    await until(lambda: catch_up.pending == 1)
    del api.objects["gone"]
    await asyncio.wait_for(running, 1)
    assert catch_up.done and api.lists >= 2
