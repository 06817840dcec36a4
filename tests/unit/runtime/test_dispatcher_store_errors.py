"""The dispatcher while the store fails: a task it cannot lease waits, it is not retried in a busy loop.

Found by the chaos suite: during a PostgreSQL restart every lease failed, the task went straight
back to the waiting pollers, and they failed again at once (thousands of tracebacks a second).
On a fake clock: the pauses are the dispatcher's, not the machine's.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.runtime import Dispatcher, EngineService, FakeClock
from tests.support.waiting import advance_until, eventually

SPEC = {"taskQueue": "q", "timeline": ["a"]}


async def test_a_task_whose_lease_the_store_refused_is_offered_again_after_a_pause_not_at_once(
    engine: EngineService, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatcher = Dispatcher(engine.db, engine, clock=clock, retry_after_error_ms=400)
    await dispatcher.start()
    await clock.wait_for_sleepers(2)  # the promote and sweep loops
    try:
        await engine.start("w", {}, execution_id="e1")
        real_handle = engine.handle
        leases: list[float] = []
        store_down = True

        async def flaky_handle(execution_id: str, command: cmd.Command) -> object:
            if isinstance(command, cmd.TaskStarted):
                leases.append(clock.now_s())
                await asyncio.sleep(0)  # a store call awaits its thread, as here
                if store_down:
                    raise ConnectionError("the database is restarting")
            return await real_handle(execution_id, command)

        monkeypatch.setattr(engine, "handle", flaky_handle)
        began = clock.now_s()
        # Before the fix this poll never returned: the task was always ready, so its wait never ended.
        poll = asyncio.create_task(dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=300))
        await eventually(lambda: len(leases) >= 1, what="the first lease, refused by the store")
        await clock.advance(0.3)
        nothing = await asyncio.wait_for(poll, timeout=30)
        assert nothing is None
        assert len(leases) == 1, "one failed lease, then the task waits out the pause"

        store_down = False
        again = asyncio.create_task(dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=3000))
        await advance_until(clock, again.done, step=0.05, what="the task offered again")
        granted = again.result()
        assert granted is not None and granted.step == "a"
        assert len(leases) == 2
        assert leases[1] - began >= 0.4, "offered again only after retry_after_error_ms"
    finally:
        await dispatcher.stop()


async def test_while_the_store_is_down_expired_leases_wait_with_one_warning_and_time_out_when_it_is_back(
    engine: EngineService, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Found by the chaos suite: a traceback every 0.1 s per expired lease during a database restart.
    from cerebelum_operator.store import StoreUnavailable

    engine.db.store.put_workflow("short", {"taskQueue": "q", "timeline": ["a"], "defaults": {"lease": "1s"}}, now_ms=0)
    dispatcher = Dispatcher(engine.db, engine, clock=clock, sweep_interval_s=0.02)
    await dispatcher.start()
    await clock.wait_for_sleepers(2)
    try:
        await engine.start("short", {}, execution_id="e2")
        granted = await dispatcher.poll(worker_id="gone", task_queue="q", steps=["a"], wait_ms=0)
        assert granted is not None
        real_handle = engine.handle
        store_down = True
        timeouts = 0

        async def failing_handle(execution_id: str, command: cmd.Command) -> object:
            nonlocal timeouts
            if isinstance(command, cmd.TaskTimedOut) and store_down:
                timeouts += 1
                raise StoreUnavailable("the database is restarting")
            return await real_handle(execution_id, command)

        monkeypatch.setattr(engine, "handle", failing_handle)
        with caplog.at_level("INFO", logger="cerebelum_operator.runtime.dispatcher"):
            # The lease runs out at 1 s; sweeps every 0.02 s keep finding it while the store is down.
            await advance_until(clock, lambda: timeouts >= 5, step=0.02, what="five refused lease timeouts")
            store_down = False

            async def timed_out() -> bool:
                state = await engine.state_of("e2")
                return state.steps["a"].last_error is not None and "LeaseExpired" in state.steps["a"].last_error

            def recovery_logged() -> bool:
                return any("available again" in r.getMessage() for r in caplog.records)

            deadline = time.monotonic() + 30  # real time, only reached when the test fails
            # The sweep logs the recovery once its call returns, a step after the state shows it.
            while not (await timed_out() and recovery_logged()):
                assert time.monotonic() < deadline, (
                    "the expired lease never timed out (and was logged) once the store was back"
                )
                await clock.advance(0.02)
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "store is unavailable" in warnings[0].getMessage()
        assert not [r for r in caplog.records if r.levelname == "ERROR"]
    finally:
        await dispatcher.stop()
