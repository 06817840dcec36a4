"""Signals, child workflows and continue-as-new on a real engine, store and workers (issue 17).

Temporal's hello_signal, hello_child_workflow and hello_continue_as_new written plainly, each
passing, and the engine SIGKILLed between a signal's acceptance and its delivery, during a
child's run, and in the middle of a continue-as-new chain. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cerebelum import Client
from tests.support.processes import EngineProcess, WorkerPool, run_cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

WORKER = Path(__file__).parent / "workers" / "greeting_worker.py"

HELLO_SIGNAL: dict[str, Any] = {
    "timeline": ["wait"],
    "vars": {"greetings": []},
    "steps": {
        "wait": {
            "signal": {"name": "greeting", "timeout": "1h"},
            "set": {"greetings": "result.data.exit ? vars.greetings : vars.greetings + [result.data.name]"},
        }
    },
    "branch": {
        "wait": [
            {"when": "steps.wait.data.exit", "then": "succeed"},
            {"when": "true", "goto": "wait", "maxIterations": 1000},
        ]
    },
    "output": "vars.greetings",
}
COMPOSE_GREETING: dict[str, Any] = {
    "taskQueue": "test",
    "timeline": ["hold", "compose_greeting"],
    "steps": {
        "hold": {"function": "slow", "args": {"hold_s": "input.hold_s"}},
        "compose_greeting": {"args": {"greeting": "input.greeting", "name": "input.name"}},
    },
    "output": "steps.compose_greeting.text",
}
HELLO_CHILD: dict[str, Any] = {
    "timeline": ["compose"],
    "steps": {
        "compose": {
            "child": {
                "workflow": "compose-greeting",
                "input": "{'greeting': 'Hello', 'name': input.name, 'hold_s': input.hold_s}",
            }
        }
    },
    "output": "steps.compose",
}
HELLO_CONTINUE_AS_NEW: dict[str, Any] = {
    "input": {"type": "object", "properties": {"iteration": {"type": "integer"}}, "required": ["iteration"]},
    "timeline": ["check", "pause", "again"],
    "steps": {
        "check": {"timer": {"duration": "1ms"}},
        "pause": {"timer": {"duration": "50ms"}},
        "again": {"continueAsNew": {"input": "{'iteration': input.iteration + 1}"}},
    },
    "branch": {"check": [{"when": "input.iteration >= 10", "then": "succeed"}]},
    "output": "input.iteration",
}


@pytest.fixture
def workers(engine: EngineProcess, ledger: Path, tmp_path: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(script=WORKER, address=engine.address, ledger=ledger, log_dir=tmp_path)
    yield pool
    pool.stop_all()


def ledger_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def kinds(client: Client, execution_id: str) -> list[str]:
    return [event.type for event in client.history(execution_id)]


def test_hello_signal_takes_back_to_back_signals_in_order(client: Client) -> None:
    client.apply_workflow("greetings", HELLO_SIGNAL)
    client.start("greetings", None, execution_id="greet-1")
    for name in ("Ada", "Bob", "Cyd"):
        client.signal("greet-1", "greeting", {"name": name, "exit": False})
    client.signal("greet-1", "greeting", {"name": "", "exit": True})

    finished = client.wait("greet-1", timeout=60)

    assert finished.phase == "Succeeded", finished.error
    assert finished.output == ["Ada", "Bob", "Cyd"]
    assert kinds(client, "greet-1").count("SignalDelivered") == 4


def test_a_signal_accepted_before_an_engine_sigkill_is_delivered_after_the_restart(
    engine: EngineProcess, workers: WorkerPool, client: Client, ledger: Path
) -> None:
    workers.start()
    client.apply_workflow(
        "hold-then-wait",
        {
            "taskQueue": "test",
            "timeline": ["hold", "wait"],
            "steps": {"hold": {"function": "slow", "args": {"hold_s": "3"}}, "wait": {"signal": {"name": "go"}}},
            "output": "steps.wait.data",
        },
    )
    client.start("hold-then-wait", None, execution_id="sig-kill")
    wait_until(lambda: any(e["event"] == "start" for e in ledger_lines(ledger)), within=60, what="the slow step")
    data = {"n": 1, "note": "[red]not markup[/red]"}
    client.signal("sig-kill", "go", data, request_id="once")
    assert "SignalReceived" in kinds(client, "sig-kill")  # accepted: durable before the kill
    described = run_cli(engine, "describe", "sig-kill").stdout
    assert "Queued signal go from anonymous at " in described
    assert "[red]not markup[/red]" in described

    engine.kill()
    engine.start()
    with Client(address=engine.address) as again:
        again.signal("sig-kill", "go", data, request_id="once")  # a client retrying after the outage
        finished = again.wait("sig-kill", timeout=120)
        history = kinds(again, "sig-kill")

    assert finished.phase == "Succeeded", finished.error
    assert finished.output == data
    assert (history.count("SignalReceived"), history.count("SignalDelivered")) == (1, 1)


def test_hello_child_workflow_survives_an_engine_sigkill_during_the_childs_run(
    engine: EngineProcess, workers: WorkerPool, client: Client, ledger: Path
) -> None:
    workers.start()
    client.apply_workflow("compose-greeting", COMPOSE_GREETING)
    client.apply_workflow("hello-child", HELLO_CHILD)
    client.start("hello-child", {"name": "World", "hold_s": 3}, execution_id="parent-1")
    wait_until(lambda: any(e["event"] == "start" for e in ledger_lines(ledger)), within=60, what="the child's step")

    engine.kill()
    engine.start()
    with Client(address=engine.address) as again:
        finished = again.wait("parent-1", timeout=120)
        child_id = "parent-1:compose:1.1"
        child = again.get(child_id)
        history = kinds(again, "parent-1")
        executions = [e.id for e in again.list(limit=100)]

    assert finished.phase == "Succeeded", finished.error
    assert finished.output == "Hello, World!"
    assert child.phase == "Succeeded"
    assert (child.parent_id, child.parent_step) == ("parent-1", "compose")
    assert history.count("ChildStarted") == 1 and history.count("ChildEnded") == 1
    assert sorted(executions) == sorted(["parent-1", child_id])
    assert [e["step"] for e in ledger_lines(ledger) if e["event"] == "run"].count("compose_greeting") == 1
    parent_view = run_cli(engine, "describe", "parent-1").stdout
    child_view = run_cli(engine, "describe", child_id).stdout
    assert "Children" in parent_view and child_id in parent_view and "compose-greeting" in parent_view
    assert "Parent:    parent-1 (its step compose)" in child_view


def test_cancelling_a_parent_cancels_its_running_child(workers: WorkerPool, client: Client) -> None:
    client.apply_workflow("compose-greeting", COMPOSE_GREETING)
    client.apply_workflow("hello-child", HELLO_CHILD)
    client.start("hello-child", {"name": "World", "hold_s": 600}, execution_id="parent-2")
    wait_until(lambda: len(client.get("parent-2").children) == 1, within=60, what="the child to be started")
    client.cancel("parent-2", reason="changed my mind")

    child = client.wait("parent-2:compose:1.1", timeout=60)

    assert child.phase == "Cancelled"
    assert child.error == "its parent execution 'parent-2' ended"


def test_hello_continue_as_new_runs_ten_runs_across_an_engine_sigkill_each_run_once(
    engine: EngineProcess, client: Client
) -> None:
    client.apply_workflow("looping", HELLO_CONTINUE_AS_NEW)
    client.start("looping", {"iteration": 0}, execution_id="loop")
    wait_until(lambda: client.get("loop").continued_as != "", within=60, what="the first run to continue")

    engine.kill()
    engine.start()
    with Client(address=engine.address) as again:
        wait_until(
            lambda: again.get("loop:run-11").phase == "Succeeded" if _exists(again, "loop:run-11") else False,
            within=120,
            what="the eleventh run to succeed",
        )
        runs = sorted(e.id for e in again.list(limit=100))
        last = again.get("loop:run-11")
        first = again.get("loop")
    described = run_cli(engine, "describe", "loop").stdout  # the chain's latest run, and its runs

    assert runs == sorted(["loop", *(f"loop:run-{n}" for n in range(2, 12))])
    assert last.output == 10
    assert (last.run, last.first_run_id, last.continued_from) == (11, "loop", "loop:run-10")
    assert (first.phase, first.continued_as) == ("ContinuedAsNew", "loop:run-2")
    assert "Execution loop:run-11" in described
    assert "Runs:      loop, …, loop:run-8, loop:run-9, loop:run-10, loop:run-11" in described


def _exists(client: Client, execution_id: str) -> bool:
    from cerebelum import NotFoundError

    try:
        client.get(execution_id)
    except NotFoundError:
        return False
    return True
