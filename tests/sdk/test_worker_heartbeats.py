"""Heartbeats keep leases alive; their replies cancel steps or take their tasks away."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import grpc

from cerebelum import StepCancelled, StepContext, Worker
from cerebelum.v1 import worker_pb2
from tests.support.waiting import eventually

from .fakes import FakeWorkerService, make_task, running


def make_worker(service: FakeWorkerService) -> Worker:
    return Worker("q", address=service.address, poll_wait=0.5, worker_id="w-hb")


async def test_the_worker_heartbeats_on_its_own_when_the_step_need_not(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def slow() -> str:
        await asyncio.sleep(0.5)
        return "done"

    async with running(worker):
        done = await worker_service.run_task(make_task("slow", lease_ms=300))

    assert done.WhichOneof("outcome") == "success"
    beats = worker_service.heartbeats
    assert 2 <= len(beats) <= 6  # every lease/3 = 100 ms
    assert {(beat.task_token, beat.worker_id) for beat in beats} == {(done.task_token, "w-hb")}


async def test_a_quick_step_sends_no_heartbeat(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def quick() -> None: ...

    async with running(worker):
        await worker_service.run_task(make_task("quick", lease_ms=300))
        await asyncio.sleep(0.2)

    assert worker_service.heartbeats == []


async def test_no_heartbeat_is_sent_when_required_but_the_step_never_calls_it(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def silent() -> None:
        await asyncio.sleep(0.5)  # more than one heartbeat interval, less than the lease

    async with running(worker):
        await worker_service.run_task(make_task("silent", lease_ms=1200, heartbeat_required=True))

    assert worker_service.heartbeats == []


async def test_a_required_heartbeat_is_sent_with_the_latest_progress(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    async def copy(ctx: StepContext) -> None:
        ctx.heartbeat({"copied": 1})
        await asyncio.sleep(0.05)
        ctx.heartbeat({"copied": 2})  # throttled: sent at the next interval
        await asyncio.sleep(0.3)

    async with running(worker):
        await worker_service.run_task(make_task("copy", lease_ms=300, heartbeat_required=True))

    progress = [json.loads(beat.progress_json) for beat in worker_service.heartbeats]
    assert progress == [{"copied": 1}, {"copied": 2}]


async def test_a_retried_step_reads_the_progress_its_previous_attempt_last_sent(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)
    seen: list[Any] = []

    @worker.step()
    async def resume(ctx: StepContext) -> None:
        seen.append(ctx.last_progress)

    retry = make_task("resume", attempt=2)
    retry.last_progress_json = '{"page": 7}'
    async with running(worker):
        await worker_service.run_task(make_task("resume"))
        await worker_service.run_task(retry)

    assert seen == [None, {"page": 7}]


async def test_a_sync_step_can_heartbeat_from_its_thread(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def crunch(ctx: StepContext) -> None:
        ctx.heartbeat("working")
        time.sleep(0.2)

    async with running(worker):
        await worker_service.run_task(make_task("crunch", lease_ms=30_000, heartbeat_required=True))

    assert [beat.progress_json for beat in worker_service.heartbeats] == ['"working"']


async def test_a_cancel_request_cancels_an_async_step_and_reports_cancelled(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)
    worker_service.heartbeat_reply = worker_pb2.HeartbeatResponse(cancel_requested=True)
    observed: list[str] = []

    @worker.step()
    async def long_running(ctx: StepContext) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            observed.append(f"cancelled={ctx.cancelled}")
            raise
        return "finished"

    async with running(worker):
        done = await worker_service.run_task(make_task("long_running", lease_ms=300))

    assert done.WhichOneof("outcome") == "cancelled"
    assert observed == ["cancelled=True"]


async def test_a_cancel_request_sets_cancelled_for_a_sync_step(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)
    worker_service.heartbeat_reply = worker_pb2.HeartbeatResponse(cancel_requested=True)

    @worker.step()
    def careful(ctx: StepContext) -> None:
        deadline = time.monotonic() + 10
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        raise RuntimeError("stopped on request")

    async with running(worker):
        done = await worker_service.run_task(make_task("careful", lease_ms=300))

    assert done.WhichOneof("outcome") == "cancelled"
    assert done.cancelled.message == "stopped on request"


async def test_wait_cancelled_returns_once_cancellation_is_requested(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)
    worker_service.heartbeat_reply = worker_pb2.HeartbeatResponse(cancel_requested=True)

    watched: list[bool] = []

    @worker.step()
    async def watcher(ctx: StepContext) -> Any:
        watch = asyncio.ensure_future(ctx.wait_cancelled())
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0)
            watched.append(watch.done() and watch.exception() is None)

    async with running(worker):
        done = await worker_service.run_task(make_task("watcher", lease_ms=300))

    assert done.WhichOneof("outcome") == "cancelled"
    assert watched == [True]


async def test_a_lost_lease_stops_the_step_and_drops_its_result(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)
    worker_service.heartbeat_reply = worker_pb2.HeartbeatResponse(lease_lost=True)
    stopped = asyncio.Event()

    @worker.step()
    async def doomed() -> str:
        try:
            await asyncio.sleep(30)
        finally:
            stopped.set()
        return "too late"

    @worker.step()
    async def later() -> str:
        return "ok"

    async with running(worker):
        await worker_service.tasks.put(make_task("doomed", lease_ms=300, token="doomed"))
        async with asyncio.timeout(5):
            await stopped.wait()
        await worker_service.run_task(make_task("later", token="later"))
        await eventually(lambda: worker.active_steps == 0)

    assert [c.task_token for c in worker_service.completions] == ["later"]
    assert len(worker_service.heartbeats) == 1  # none after the lease was lost


async def test_a_sync_step_learns_from_its_next_heartbeat_that_it_was_cancelled(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)
    worker_service.heartbeat_reply = worker_pb2.HeartbeatResponse(cancel_requested=True)
    raised: list[StepCancelled] = []

    @worker.step()
    def batch(ctx: StepContext) -> str:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                ctx.heartbeat({"at": time.monotonic()})
            except StepCancelled as exc:
                raised.append(exc)
                raise
            time.sleep(0.01)
        return "never told"

    async with running(worker):
        done = await worker_service.run_task(make_task("batch", lease_ms=300, heartbeat_required=True))

    assert done.WhichOneof("outcome") == "cancelled"
    assert done.cancelled.message == "the step was cancelled on request"
    assert [exc.reason for exc in raised] == ["cancel_requested"]


async def test_a_sync_step_learns_from_its_next_heartbeat_that_its_lease_was_lost(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)
    worker_service.heartbeat_reply = worker_pb2.HeartbeatResponse(lease_lost=True)
    reasons: list[str | None] = []

    @worker.step()
    def batch(ctx: StepContext) -> str:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                ctx.heartbeat()
            except StepCancelled as exc:
                reasons.append(exc.reason)
                raise
            time.sleep(0.01)
        return "never told"

    async with running(worker):
        await worker_service.tasks.put(make_task("batch", lease_ms=300, heartbeat_required=True))
        await eventually(lambda: reasons != [] and worker.active_steps == 0, within=15)

    assert reasons == ["lease_lost"]
    assert worker_service.completions == []  # the task is someone else's now


async def test_a_sync_step_that_misses_its_heartbeat_timeout_learns_it_timed_out(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)
    seen: list[tuple[bool, str | None, str]] = []

    @worker.step()
    def stuck(ctx: StepContext) -> str:
        deadline = time.monotonic() + 10
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)  # busy, never heartbeats
        try:
            ctx.heartbeat()
            raised = "nothing"
        except StepCancelled as exc:
            raised = str(exc)
        seen.append((ctx.cancelled, ctx.cancel_reason, raised))
        return "too late"

    async with running(worker):
        await worker_service.tasks.put(make_task("stuck", lease_ms=300, heartbeat_required=True))
        await eventually(lambda: seen != [] and worker.active_steps == 0, within=15)

    assert seen == [
        (True, "heartbeat_timeout", "the step did not heartbeat within its heartbeat timeout: its lease is gone")
    ]
    assert worker_service.heartbeats == []
    assert worker_service.completions == []  # the engine timed the attempt out; this result is dropped


async def test_an_async_step_that_misses_its_heartbeat_timeout_is_cancelled(
    worker_service: FakeWorkerService,
) -> None:
    worker = make_worker(worker_service)
    stopped = asyncio.Event()

    @worker.step()
    async def stuck(ctx: StepContext) -> None:
        try:
            await asyncio.sleep(30)
        finally:
            stopped.set()

    async with running(worker):
        await worker_service.tasks.put(make_task("stuck", lease_ms=300, heartbeat_required=True))
        async with asyncio.timeout(10):
            await stopped.wait()
        await eventually(lambda: worker.active_steps == 0)

    assert worker_service.completions == []


async def test_a_step_that_heartbeats_in_time_keeps_its_lease(worker_service: FakeWorkerService) -> None:
    worker = make_worker(worker_service)

    @worker.step()
    def diligent(ctx: StepContext) -> str:
        for n in range(40):  # 0.8 s, well past one 300 ms lease
            ctx.heartbeat(n)
            time.sleep(0.02)
        return "done"

    async with running(worker):
        done = await worker_service.run_task(make_task("diligent", lease_ms=300, heartbeat_required=True), timeout=15)

    assert json.loads(done.success.output_json) == "done"


async def test_a_step_that_keeps_calling_heartbeat_is_not_stopped_while_the_engine_cannot_answer(
    worker_service: FakeWorkerService,
) -> None:
    """The engine decides whether a lease ran out (it renews every lease after a restart): a step
    that keeps calling ``ctx.heartbeat()`` through an outage finishes and reports its result."""
    worker = make_worker(worker_service)
    worker_service.heartbeat_error = (grpc.StatusCode.UNAVAILABLE, "engine restarting")

    @worker.step()
    def diligent(ctx: StepContext) -> str:
        for n in range(40):  # 0.8 s, well past one 300 ms lease, every beat refused
            ctx.heartbeat(n)
            time.sleep(0.02)
        return "done"

    async with running(worker):
        done = await worker_service.run_task(make_task("diligent", lease_ms=300, heartbeat_required=True), timeout=15)

    assert json.loads(done.success.output_json) == "done"
    assert worker_service.heartbeats, "the worker kept trying to beat"
