"""The worker says that it started and why a step failed, visibly, without taking over app logging."""

from __future__ import annotations

import logging
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from cerebelum import NonRetryableError, Worker

from .fakes import FakeWorkerService, free_port, make_task, running


async def test_a_failing_step_leaves_its_traceback_in_the_worker_log(
    worker_service: FakeWorkerService, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker("q", address=worker_service.address, poll_wait=0.5)

    @worker.step()
    async def explode() -> None:
        raise ValueError("the disk is full")

    with caplog.at_level(logging.INFO, logger="cerebelum"):
        async with running(worker):
            done = await worker_service.run_task(make_task("explode", attempt=2))

    assert done.failure.type == "ValueError"
    (record,) = [r for r in caplog.records if "failed on attempt" in r.getMessage()]
    assert record.name.startswith("cerebelum")
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "step explode of execution ex-1 failed on attempt 2 (retryable): ValueError: the disk is full"
    )
    logged = logging.Formatter().format(record)
    assert "Traceback (most recent call last)" in logged
    assert 'raise ValueError("the disk is full")' in logged


async def test_a_final_step_failure_is_logged_as_an_error(
    worker_service: FakeWorkerService, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker("q", address=worker_service.address, poll_wait=0.5)

    @worker.step()
    def refuse() -> None:
        raise NonRetryableError("no such customer", type="UnknownCustomer")

    with caplog.at_level(logging.INFO, logger="cerebelum"):
        async with running(worker):
            await worker_service.run_task(make_task("refuse"))

    (record,) = [r for r in caplog.records if "failed on attempt" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert "(not retryable): NonRetryableError: no such customer" in record.getMessage()
    assert record.exc_info is not None


SCRIPT = textwrap.dedent(
    """
    import logging
    import sys

    from cerebelum import Worker

    mode, address = sys.argv[1], sys.argv[2]
    if mode == "app":
        logging.basicConfig(format="APP %(levelname)s %(name)s %(message)s", level=logging.INFO)
    worker = Worker("orders", address=address, worker_id="w-1", max_concurrency=3)


    @worker.step()
    def charge() -> None: ...


    @worker.step(name="send-receipt")
    def send_receipt() -> None: ...


    worker.run(configure_logging=mode != "off")
    """
)


def run_worker_until_it_cannot_poll(mode: str, tmp_path: Path) -> str:
    """Start the script against a port nobody serves, stop it once it reports that, return its stderr."""
    script = tmp_path / "worker.py"
    script.write_text(SCRIPT)
    address = f"127.0.0.1:{free_port()}"
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    with subprocess.Popen(
        [sys.executable, str(script), mode, address], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    ) as process:
        stderr = process.stderr
        assert stderr is not None

        def read() -> None:
            for line in stderr:
                lines.put(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            while not any("cannot poll" in line for line in seen):
                seen.append(lines.get(timeout=30))
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
        reader.join(timeout=10)
    while not lines.empty():
        seen.append(lines.get())
    return "".join(seen).replace(address, "ADDRESS")


STARTED = "worker w-1 serving task queue 'orders' at ADDRESS: steps charge, send-receipt; up to 3 at once"


def test_run_prints_a_start_up_line_to_stderr_when_the_app_configured_no_logging(tmp_path: Path) -> None:
    stderr = run_worker_until_it_cannot_poll("default", tmp_path)

    assert f" INFO cerebelum.worker: {STARTED}\n" in stderr
    assert " WARNING cerebelum.worker: cannot poll orders at ADDRESS (UNAVAILABLE: " in stderr
    assert "SIGTERM: draining" in stderr


def test_run_leaves_a_configured_app_logging_alone_and_logs_through_it_once(tmp_path: Path) -> None:
    stderr = run_worker_until_it_cannot_poll("app", tmp_path)

    assert f"APP INFO cerebelum.worker {STARTED}\n" in stderr
    assert stderr.count(STARTED) == 1


def test_run_adds_no_handler_when_asked_not_to(tmp_path: Path) -> None:
    stderr = run_worker_until_it_cannot_poll("off", tmp_path)

    assert STARTED not in stderr
