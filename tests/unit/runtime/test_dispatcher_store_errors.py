"""The dispatcher while the store fails: a task it cannot lease waits, it is not retried in a busy loop.

Found by the chaos suite: during a PostgreSQL restart every lease failed, the task went straight
back to the waiting pollers, and they failed again at once (thousands of tracebacks a second).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.runtime import Database, Dispatcher, EngineService, SystemClock
from cerebelum_operator.store import open_store

SPEC = {"taskQueue": "q", "timeline": ["a"]}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[EngineService]:
    store = open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    store.migrate()
    store.put_workflow("w", SPEC, now_ms=0)
    db = Database(store)
    try:
        yield EngineService(db, clock=SystemClock())
    finally:
        db.close()


async def test_a_task_whose_lease_the_store_refused_is_offered_again_after_a_pause_not_at_once(
    engine: EngineService, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatcher = Dispatcher(engine.db, engine, clock=SystemClock(), retry_after_error_ms=400)
    await dispatcher.start()
    try:
        await engine.start("w", {}, execution_id="e1")
        real_handle = engine.handle
        leases: list[float] = []
        store_down = True

        async def flaky_handle(execution_id: str, command: cmd.Command) -> object:
            if isinstance(command, cmd.TaskStarted):
                leases.append(asyncio.get_running_loop().time())
                await asyncio.sleep(0)  # a store call awaits its thread, as here
                if store_down:
                    raise ConnectionError("the database is restarting")
            return await real_handle(execution_id, command)

        monkeypatch.setattr(engine, "handle", flaky_handle)
        began = asyncio.get_running_loop().time()
        # Before the fix this poll never returned: the task was always ready, so its wait never ended.
        nothing = await asyncio.wait_for(
            dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=300), timeout=5
        )
        assert nothing is None
        assert len(leases) == 1, "one failed lease, then the task waits out the pause"

        store_down = False
        granted = await dispatcher.poll(worker_id="w1", task_queue="q", steps=["a"], wait_ms=3000)
        assert granted is not None and granted.step == "a"
        assert len(leases) == 2
        assert leases[1] - began >= 0.35, "offered again only after retry_after_error_ms"
    finally:
        await dispatcher.stop()
