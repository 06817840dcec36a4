"""The Temporal benchmark's workflows, its no-op activities, and the worker process that serves them.

They live apart from the runner (`temporal_peer.py`) because Temporal's default sandboxed workflow
runner re-imports a workflow's module for every workflow run it starts or replays: a small module
keeps that per-run cost to what any Temporal user with a small workflow file pays, and keeps the
runner's own imports out of the sandbox.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

__all__ = [
    "TASK_QUEUE",
    "FanoutWorkflow",
    "MapWorkflow",
    "SequenceWorkflow",
    "SleepPlan",
    "SleepWorkflow",
    "echo",
    "make_items",
    "noop",
    "serve",
]

TASK_QUEUE = "bench"
# A no-op takes milliseconds; 30 s leaves room for a loaded two-core machine. It is also how long
# a step whose completion the overloaded server dropped (its RPC deadline passed) waits before
# Temporal retries it, which is the recovery Temporal has for that, so it must not be minutes.
STEP_TIMEOUT = timedelta(seconds=30)


@activity.defn
async def noop() -> None:
    """A step that does nothing, so the benchmark measures the engine and not the step's work."""


@activity.defn
async def make_items(count: int) -> list[int]:
    """The map shape's first step: the list of items, known only once it ran."""
    return list(range(count))


@activity.defn
async def echo(item: int) -> int:
    """The map shape's per-item step: does nothing but return its item."""
    return item


async def _step() -> None:
    """Run one no-op step, a durable activity in the workflow's history."""
    await workflow.execute_activity(noop, start_to_close_timeout=STEP_TIMEOUT)


@workflow.defn
class SequenceWorkflow:
    """`steps` no-op activities one after another (the latency and throughput shapes)."""

    @workflow.run
    async def run(self, steps: int) -> int:
        for _ in range(steps):
            await _step()
        return steps


@workflow.defn
class FanoutWorkflow:
    """`steps` no-op activities all scheduled at once and awaited together (the fanout shape)."""

    @workflow.run
    async def run(self, steps: int) -> int:
        await asyncio.gather(*(_step() for _ in range(steps)))
        return steps


@workflow.defn
class MapWorkflow:
    """An activity returning `count` items, then one no-op activity per item, all scheduled at once (the map shape)."""

    @workflow.run
    async def run(self, count: int) -> int:
        items = await workflow.execute_activity(make_items, count, start_to_close_timeout=STEP_TIMEOUT)
        outputs = await asyncio.gather(
            *(workflow.execute_activity(echo, item, start_to_close_timeout=STEP_TIMEOUT) for item in items)
        )
        return len(outputs)


@dataclass(frozen=True)
class SleepPlan:
    """What a sleeping workflow does: an optional step, a durable sleep until `wake_at`, an optional step."""

    step_before: bool
    wake_at: float  # epoch seconds, shared by every execution of a wave so they all wake together
    step_after: bool


@workflow.defn
class SleepWorkflow:
    """The hibernation and recovery shape: [step] -> durable timer until `wake_at` -> [step]."""

    @workflow.run
    async def run(self, plan: SleepPlan) -> None:
        if plan.step_before:
            await _step()
        remaining = plan.wake_at - workflow.now().timestamp()
        if remaining > 0:
            await workflow.sleep(remaining)
        if plan.step_after:
            await _step()


async def serve(address: str, identity: str) -> None:
    """Run one worker until the process is killed; print `ready` once it polls, for the runner to wait on."""
    client = await Client.connect(address, identity=identity)
    worker = Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[SequenceWorkflow, FanoutWorkflow, MapWorkflow, SleepWorkflow],
        activities=[noop, make_items, echo],
        # High enough that the worker's slots are never the limit (a fanout of 100 fits at once).
        max_concurrent_activities=100,
        max_concurrent_workflow_tasks=100,
    )
    async with worker:
        print("ready", flush=True)
        await asyncio.Event().wait()
