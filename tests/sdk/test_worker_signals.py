"""``Worker.run()`` in a real process: SIGTERM drains the running step, reports it and exits cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap

from tests.support.waiting import eventually

from .fakes import FakeWorkerService, make_task

WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from cerebelum import Worker

    worker = Worker("q", address=sys.argv[1], poll_wait=0.5, drain_timeout=10)

    @worker.step()
    async def slow() -> str:
        await asyncio.sleep(0.5)
        return "drained"

    worker.run()
    print("clean exit")
    """
)


async def test_sigterm_lets_the_running_step_finish_report_and_the_process_exit(
    worker_service: FakeWorkerService,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER_SCRIPT,
        worker_service.address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        await eventually(lambda: bool(worker_service.polls), within=30, what="the worker's first poll")
        await worker_service.tasks.put(make_task("slow", lease_ms=300, token="slow"))
        await eventually(lambda: bool(worker_service.heartbeats), what="the step is running")
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == "clean exit"
    (done,) = worker_service.completions
    assert done.success.output_json == '"drained"'
