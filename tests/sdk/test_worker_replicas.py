"""A worker given a name that resolves to every replica ("dns:///...") polls each replica, and follows
the answer as replicas come and go."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import pytest

import cerebelum.worker
from cerebelum import Worker
from tests.support.waiting import eventually

from .fakes import FakeWorkerService, free_port, make_task, running, serve_worker_service


async def test_a_dns_name_gets_a_poller_group_per_address_it_resolves_to_and_follows_the_answer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cerebelum.worker")
    monkeypatch.setattr(cerebelum.worker, "_RESOLVE_EVERY_S", 0.05)
    port = free_port()
    answer: list[str] = []
    asked: list[tuple[str, int]] = []

    async def getaddrinfo(host: str, port_: int, **_: Any) -> list[Any]:
        asked.append((host, port_))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port_)) for ip in answer]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    async with (
        serve_worker_service(FakeWorkerService(), port, host="127.0.0.1") as first,
        serve_worker_service(FakeWorkerService(), port, host="127.0.0.2") as second,
    ):
        answer[:] = ["127.0.0.1", "127.0.0.2"]
        worker = Worker("q", address=f"dns:///replicas.test:{port}", poll_wait=0.2)

        @worker.step()
        async def echo(input: int) -> int:
            return input

        async with running(worker):
            # Each replica hands out its own tasks: both are polled.
            done = await second.run_task(make_task("echo", input=2, token="t2"))
            assert json.loads(done.success.output_json) == 2
            done = await first.run_task(make_task("echo", input=1, token="t1"))
            assert json.loads(done.success.output_json) == 1
            assert asked[0] == ("replicas.test", port)

            answer[:] = ["127.0.0.1"]  # the second replica left the Service
            await eventually(
                lambda: f"engine 127.0.0.2:{port} left" in caplog.text, what="the worker to stop polling it"
            )
            answer[:] = []  # a name that resolves to nothing for a moment: keep polling what it had
            done = await first.run_task(make_task("echo", input=3, token="t3"))
            assert json.loads(done.success.output_json) == 3

            answer[:] = ["127.0.0.1", "127.0.0.2"]  # it came back
            done = await second.run_task(make_task("echo", input=4, token="t4"))
            assert json.loads(done.success.output_json) == 4
