"""Task queues' flow control on a real engine and real workers, on SQLite and PostgreSQL.

A paused queue holds its work (the waiting steps say why) and hands it out when resumed; a
rate-limited queue never starts more than its rate, measured from the history's StepStarted
times, even when the engine is SIGKILLed mid-run and restarted on the same store.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc

from cerebelum import Client
from cerebelum.v1 import task_queue_pb2, task_queue_pb2_grpc
from tests.integration.conftest import read_ledger
from tests.support.processes import EngineProcess, WorkerProcess, run_cli
from tests.support.waiting import wait_until

# Long enough that the engine is back (a second or three) well inside the window of the first starts:
# an engine that restarted with an empty window would start the next ones at once.
RATE, PERIOD_MS = 3, 10_000


def cli_ok(engine: EngineProcess, *args: str) -> str:
    done = run_cli(engine, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def start_times(client: Client, ids: list[str]) -> list[int]:
    """Every StepStarted of these executions, in epoch ms, sorted: what the history says ran when."""
    times = []
    for execution_id in ids:
        for event in client.history(execution_id):
            if event.type == "StepStarted":
                assert event.at is not None
                times.append(int(event.at.timestamp() * 1000))
    return sorted(times)


def assert_never_over_rate(times: list[int]) -> None:
    """Any PERIOD_MS holds at most RATE starts: t[i + RATE] - t[i] >= PERIOD_MS for every i."""
    gaps = [later - earlier for earlier, later in zip(times, times[RATE:], strict=False)]
    assert all(gap >= PERIOD_MS for gap in gaps), (times, gaps)


def all_succeeded(client: Client, ids: list[str]) -> bool:
    return all(client.get(i).phase == "Succeeded" for i in ids)


def test_a_paused_queue_holds_its_work_and_a_rate_limit_holds_across_an_engine_kill(
    engine: EngineProcess, client: Client, start_worker: Callable[..., WorkerProcess], ledger: Path
) -> None:
    """One engine per database (its start is most of the cost): queue `held` paused, queue `test`
    limited to 3 per 10 s; the engine is SIGKILLed once 3 limited steps ran, and comes back with both."""
    client.apply_workflow("held", {"taskQueue": "held", "timeline": ["a"]})
    client.apply_workflow("limited", {"taskQueue": "test", "timeline": ["a"]})
    cli_ok(engine, "queue", "pause", "held", "--note", "maintenance")
    assert "limited to 3/10s" in cli_ok(engine, "queue", "limit", "test", f"{RATE}/10s")
    start_worker(TASK_QUEUE="held")
    start_worker()
    held = [client.start("held", {}, execution_id=f"held-{i}").id for i in range(3)]
    limited = [client.start("limited", {}, execution_id=f"limited-{i}").id for i in range(6)]
    hint = "task queue 'held' is paused (maintenance)"
    wait_until(lambda: all(client.get(i).steps[0].waiting_hint == hint for i in held), what="the paused hint")
    wait_until(lambda: len(read_ledger(ledger)) >= RATE, within=60, what="the first window's steps to run")

    engine.kill()  # SIGKILL: the pause and the window must come back from the store
    engine.start()
    with Client(address=engine.address) as fresh:
        wait_until(lambda: queue_polled(engine, "held"), what="the held queue's worker to poll again")
        queues = {q["name"]: q for q in json.loads(cli_ok(engine, "queue", "list", "-o", "json"))}
        assert (queues["held"]["paused"], queues["held"]["ready"], queues["held"]["waitingReason"]) == (True, 3, hint)
        assert queues["test"]["rateLimit"]["text"] == "3/10s"
        wait_until(lambda: all_succeeded(fresh, limited), within=90, what="every limited execution to succeed")
        times = start_times(fresh, limited)
        assert len(times) >= len(limited)
        assert_never_over_rate(times)
        assert not any(r["execution"].startswith("held-") for r in read_ledger(ledger)), "paused: nothing ran"

        cli_ok(engine, "queue", "resume", "held")
        wait_until(lambda: all_succeeded(fresh, held), within=60, what="every held execution to succeed")


def queue_polled(engine: EngineProcess, name: str) -> bool:
    """Read through the API, not the CLI: a CLI process per check would cost a second each."""
    channel = grpc.insecure_channel(engine.address)
    try:
        stub = task_queue_pb2_grpc.TaskQueueServiceStub(channel)  # type: ignore[no-untyped-call]
        reply = stub.ListTaskQueues(task_queue_pb2.ListTaskQueuesRequest(), timeout=10)
    finally:
        channel.close()
    return any(q.name == name and q.pollers > 0 for q in reply.task_queues)
