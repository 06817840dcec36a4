"""Schedules on a real engine, store and worker processes, on SQLite and on PostgreSQL.

Temporal's hello_cron sample written plainly: a schedule starts a one-step greeting workflow every
two seconds, and each run succeeds. Then the engine is SIGKILLed across due times and restarted:
each due time the engine missed is fired once on its return (inside the catch-up window), none
twice, and the executions are exactly the schedule's consecutive due times.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cerebelum import Client
from cerebelum_operator.engine.schedules import execution_id
from tests.support.processes import EngineProcess, WorkerPool, run_cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

WORKER = Path(__file__).parent / "workers" / "hello_cron_worker.py"
HELLO_CRON = {"taskQueue": "hello-cron", "timeline": ["greet"], "output": "steps.greet"}
WITHIN = 90.0  # generous: the machine is shared, and a schedule's period adds to every wait


@pytest.fixture
def greeter(engine: EngineProcess, ledger: Path, tmp_path: Path, client: Client) -> Iterator[WorkerPool]:
    client.apply_workflow("hello-cron", HELLO_CRON)
    pool = WorkerPool(script=WORKER, address=engine.address, ledger=ledger, log_dir=tmp_path)
    pool.start()
    yield pool
    pool.stop_all()


def cli_ok(engine: EngineProcess, *args: str) -> str:
    done = run_cli(engine, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def described(engine: EngineProcess, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(cli_ok(engine, "schedule", "describe", name, "-o", "json"))
    return document


def fired(client: Client, name: str) -> list[str]:
    """Ids of the executions the schedule started, oldest due time first."""
    return sorted(e.id for e in client.list(workflow="hello-cron", limit=1000) if e.id.startswith(f"{name}-"))


def due_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def down_across_two_due_times(engine: EngineProcess, client: Client) -> None:
    """SIGKILL the engine at once after a fire (its state write may or may not have landed),
    let two due times of "tick" pass while it is down, restart it, and wait for their fires."""
    before = len(fired(client, "tick"))
    engine.kill()
    killed_at = time.time()
    # Real time for a real process: the engine must be down across the due times.
    wait_until(lambda: time.time() > killed_at + 7, within=30, what="two due times passed while down")
    engine.start()
    wait_until(
        lambda: len(fired(client, "tick")) >= before + 3, within=WITHIN, what="the missed due times fired after restart"
    )


# Schedule logic; firing across engine kills on both stores is the SIGKILL test below.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_hello_cron_greets_on_every_due_time(engine: EngineProcess, greeter: WorkerPool, client: Client) -> None:
    created = cli_ok(
        engine,
        *("schedule", "create", "hello"),
        *("--workflow", "hello-cron", "--interval", "2s", "--input", '{"name": "World"}'),
    )
    assert "schedule/hello created; next fire" in created

    def three_greeted() -> bool:
        done = [client.get(i) for i in fired(client, "hello")]
        return sum(e.phase == "Succeeded" for e in done) >= 3

    wait_until(three_greeted, within=WITHIN, what="three scheduled greetings")
    ids = fired(client, "hello")
    first = client.get(ids[0])
    assert first.output == {"greeting": "Hello, World!"}
    recent = described(engine, "hello")["recent"]
    started = [fire for fire in recent if fire["outcome"] == "started"]
    assert [fire["executionId"] for fire in started] == [execution_id("hello", due_ms(f["due"])) for f in started]
    assert {fire["executionId"] for fire in started} <= set(fired(client, "hello"))
    dues = [due_ms(fire["due"]) for fire in recent]
    assert all(later - earlier == 2000 for earlier, later in itertools.pairwise(dues)), "no due time left out"

    listed = cli_ok(engine, "schedule", "list")
    assert "hello" in listed
    assert "every 2s" in listed
    assert "schedule/hello deleted" in cli_ok(engine, "schedule", "delete", "hello")
    count = len(fired(client, "hello"))
    trigger = run_cli(engine, "schedule", "trigger", "hello")
    assert trigger.returncode == 1
    assert "schedule 'hello' not found" in trigger.stderr
    assert len(fired(client, "hello")) == count, "a deleted schedule fires no more (delete waits for a fire under way)"


def test_an_engine_sigkilled_across_due_times_fires_each_once_when_it_returns(
    engine: EngineProcess, greeter: WorkerPool, client: Client
) -> None:
    cli_ok(
        engine,
        *("schedule", "create", "tick"),
        *("--workflow", "hello-cron", "--interval", "3s", "--input", '{"name": "tick"}'),
        *("--overlap", "allowAll", "--catchup-window", "5m"),
    )
    wait_until(lambda: len(fired(client, "tick")) >= 1, within=WITHIN, what="the first fire")
    for _ in range(2):
        down_across_two_due_times(engine, client)

    cli_ok(engine, "schedule", "pause", "tick", "--note", "the test is over")  # waits for a fire under way
    ids = fired(client, "tick")
    stamps = [datetime.strptime(i.rsplit("-", 1)[1], "%Y%m%dT%H%M%SZ") for i in ids]
    gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(stamps)}
    assert gaps == {3.0}, f"every due time from the first to the last fired, none twice: {ids}"
    assert len(set(ids)) == len(ids)
    schedule = described(engine, "tick")
    assert schedule["missed"] == 0, "every missed due time was within the catch-up window"
    assert schedule["started"] == len(ids)
    assert schedule["note"] == "the test is over"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the cron expression is the point
def test_a_cron_schedule_in_a_time_zone_fires_on_its_next_minute_and_the_run_succeeds(
    engine: EngineProcess, greeter: WorkerPool, client: Client
) -> None:
    cli_ok(
        engine,
        *("schedule", "create", "minutely"),
        *("--workflow", "hello-cron", "--cron", "* * * * *", "--timezone", "Asia/Kolkata"),
        *("--input", '{"name": "cron"}'),
    )
    due = due_ms(described(engine, "minutely")["nextDue"])
    assert due % 60_000 == 0, "on a minute's boundary (Kolkata is UTC+5:30: whole minutes too)"

    wait_until(lambda: fired(client, "minutely"), within=WITHIN, what="the fire on the next minute")

    [first] = fired(client, "minutely")
    assert first == execution_id("minutely", due)
    assert client.wait(first, timeout=WITHIN).output == {"greeting": "Hello, cron!"}
