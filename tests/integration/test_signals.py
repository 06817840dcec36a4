"""Signals from the outside (issue 17): `cerebelum signal`, `cerebelum signal-with-start` and the
Python clients' `signal` and `signal_with_start`, against a real `cerebelum dev`.

The workflows wait with signal steps only and take their output from the signals' data, so no
worker is needed: what a signal carried is what the execution ends with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from cerebelum import AsyncClient, Client, Execution
from tests.support.processes import ROOT, EngineProcess, run_cli, sqlite_engine
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

GREET = {
    "timeline": ["wait_name"],
    "steps": {"wait_name": {"signal": {"name": "name", "timeout": "1h"}}},
    "output": "steps.wait_name.data",
}
# Two signal steps in turn: a signal for the second, sent first, must wait in the queue.
TWO = {
    "timeline": ["first", "second"],
    "steps": {
        "first": {"signal": {"name": "a", "timeout": "1h"}},
        "second": {"signal": {"name": "b", "timeout": "1h"}},
    },
    "output": "[steps.first.data, steps.second.data]",
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with sqlite_engine(tmp_path_factory.mktemp("signals")) as process:
        yield process


@pytest.fixture(scope="module")
def client(engine: EngineProcess) -> Iterator[Client]:
    with Client(engine.address) as client:
        client.apply_workflow("greet", GREET)
        client.apply_workflow("two", TWO)
        yield client


def cerebelum(engine: EngineProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if stdin is None:
        return run_cli(engine, *args)
    return subprocess.run(
        [sys.executable, "-m", "cerebelum_operator.cli", *args, "--address", engine.address],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def shown(finished: subprocess.CompletedProcess[str]) -> str:
    """What the command printed, with the terminal's line wrapping undone."""
    return " ".join((finished.stdout + finished.stderr).split())


def waiting(client: Client, execution_id: str, step: str) -> Execution:
    """The execution once `step` waits for its signal."""
    found: list[Execution] = []

    def check() -> bool:
        found[:] = [client.get(execution_id)]
        return any(wait.step == step for wait in found[0].signal_waits)

    wait_until(check, what=f"step {step} of {execution_id} waiting for a signal")
    return found[0]


# -- cerebelum signal ---------------------------------------------------------------------------


def test_a_signal_sent_from_the_cli_is_taken_by_the_waiting_step_and_its_data_becomes_the_output(
    engine: EngineProcess, client: Client
) -> None:
    execution = client.start("greet")
    before = waiting(client, execution.id, "wait_name")
    assert before.phase == "WaitingForSignal"
    (wait,) = before.signal_waits
    assert wait.name == "name" and wait.timeout_at is not None and wait.timeout_at > datetime.now(UTC)

    finished = cerebelum(engine, "signal", execution.id, "name", "--data", '{"first": "Ann"}')

    assert finished.returncode == 0, shown(finished)
    assert finished.stdout.startswith(f"execution/{execution.id} signal name sent; now "), shown(finished)
    final = client.wait(execution.id, timeout=30)
    assert (final.phase, final.output) == ("Succeeded", {"first": "Ann"})


def test_a_signal_no_step_waits_for_yet_is_queued_with_its_sender_and_time_until_its_step_takes_it(
    engine: EngineProcess, client: Client
) -> None:
    execution = client.start("two")
    waiting(client, execution.id, "first")

    early = cerebelum(engine, "signal", execution.id, "b", "--data", "[2]", "-o", "json")

    assert early.returncode == 0, shown(early)
    document = json.loads(early.stdout)
    (queued,) = document["queuedSignals"]
    assert (queued["name"], queued["data"]) == ("b", [2])
    assert queued["sender"], "the engine names who sent it"
    assert queued["receivedAt"].endswith("Z") and datetime.fromisoformat(queued["receivedAt"]) <= datetime.now(UTC)
    assert [wait["step"] for wait in document["signalWaits"]] == ["first"]
    described = json.loads(cerebelum(engine, "describe", execution.id, "-o", "json").stdout)
    assert [signal["name"] for signal in described["queuedSignals"]] == ["b"]

    assert cerebelum(engine, "signal", execution.id, "a", "--data", "1").returncode == 0
    final = client.wait(execution.id, timeout=30)
    assert (final.phase, final.output, final.queued_signals) == ("Succeeded", [1, [2]], ())


def test_a_signal_sent_twice_with_one_request_id_is_queued_once(engine: EngineProcess, client: Client) -> None:
    execution = client.start("two")
    waiting(client, execution.id, "first")

    for _ in range(2):
        sent = cerebelum(engine, "signal", execution.id, "b", "--data", '"once"', "--request-id", "retry-1")
        assert sent.returncode == 0, shown(sent)
    third = cerebelum(engine, "signal", execution.id, "b", "--data", '"again"', "--request-id", "retry-2", "-o", "yaml")

    assert third.returncode == 0, shown(third)
    assert [signal["data"] for signal in yaml.safe_load(third.stdout)["queuedSignals"]] == ["once", "again"]
    client.cancel(execution.id)


def test_the_payload_can_come_from_a_file_or_stdin(engine: EngineProcess, client: Client, tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text('{"from": "file", "n": 12345678901234567890}')
    from_file, from_stdin = client.start("greet"), client.start("greet")
    waiting(client, from_file.id, "wait_name")
    waiting(client, from_stdin.id, "wait_name")

    by_file = cerebelum(engine, "signal", from_file.id, "name", "--data-file", str(payload))
    by_stdin = cerebelum(engine, "signal", from_stdin.id, "name", "--data-file", "-", stdin='{"from": "stdin"}')

    assert by_file.returncode == 0 and by_stdin.returncode == 0, shown(by_file) + shown(by_stdin)
    assert client.wait(from_file.id, timeout=30).output == {"from": "file", "n": 12345678901234567890}
    assert client.wait(from_stdin.id, timeout=30).output == {"from": "stdin"}


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["--data", "{nope"], 1, "error: --data is not valid JSON"),
        (
            ["--data", "1", "--data-file", "x.json"],
            2,
            "error: give the payload with --data or with --data-file, not both",
        ),
        (["--data-file", "/no/such/file.json"], 1, "error: --data-file /no/such/file.json:"),
    ],
)
def test_a_payload_that_cannot_be_read_is_refused_before_anything_is_sent(
    engine: EngineProcess, client: Client, arguments: list[str], code: int, message: str
) -> None:
    execution = client.start("greet")
    waiting(client, execution.id, "wait_name")

    finished = cerebelum(engine, "signal", execution.id, "name", *arguments)

    assert finished.returncode == code, shown(finished)
    assert finished.stdout == "" and finished.stderr.startswith(message), shown(finished)
    assert client.get(execution.id).queued_signals == ()
    client.cancel(execution.id)


def test_signalling_an_execution_that_does_not_exist_or_has_ended_is_refused_naming_it(
    engine: EngineProcess, client: Client
) -> None:
    ended = client.start("greet")
    waiting(client, ended.id, "wait_name")
    client.cancel(ended.id)

    missing = cerebelum(engine, "signal", "no-such-[red]execution[/red]", "name")
    late = cerebelum(engine, "signal", ended.id, "name", "--data", "1")

    assert missing.returncode == 1 and missing.stdout == "", shown(missing)
    assert "no-such-[red]execution[/red]" in shown(missing) and "Traceback" not in missing.stderr
    assert late.returncode == 1 and late.stdout == "", shown(late)
    assert ended.id in shown(late)
    assert client.get(ended.id).phase == "Cancelled"


def test_a_signal_no_step_of_the_workflow_waits_for_is_refused_naming_it_as_written(
    engine: EngineProcess, client: Client
) -> None:
    execution = client.start("greet")
    waiting(client, execution.id, "wait_name")

    finished = cerebelum(engine, "signal", execution.id, "[bold]other[/bold]", "--data", "1")

    assert finished.returncode == 1 and finished.stdout == "", shown(finished)
    assert finished.stderr.startswith("error:") and "Traceback" not in finished.stderr, shown(finished)
    assert "'[bold]other[/bold]'" in shown(finished), "the name is printed as written, not as markup"
    assert "name" in shown(finished).split("wait for:", 1)[1], "the error names the signals the workflow waits for"
    assert client.get(execution.id).queued_signals == ()
    client.cancel(execution.id)


# -- cerebelum signal-with-start ------------------------------------------------------------------


def test_signal_with_start_starts_an_execution_once_and_signals_it_each_time(
    engine: EngineProcess, client: Client
) -> None:
    first = cerebelum(engine, "signal-with-start", "two", "b", "--id", "swS-1", "--data", '"B"', "-o", "json")
    second = cerebelum(engine, "signal-with-start", "two", "a", "--id", "swS-1", "--data", '"A"')

    assert first.returncode == 0, shown(first)
    document: dict[str, Any] = json.loads(first.stdout)
    assert (document["id"], document["workflow"], document["started"]) == ("swS-1", "two", True)
    assert [signal["name"] for signal in document["queuedSignals"]] == ["b"]
    assert second.returncode == 0, shown(second)
    assert second.stdout.startswith("execution/swS-1 already existed (not started again), signal a sent; now ")
    final = client.wait("swS-1", timeout=30)
    assert (final.phase, final.output) == ("Succeeded", ["A", "B"])
    assert [execution.id for execution in client.list(workflow="two") if execution.id == "swS-1"] == ["swS-1"]


def test_signal_with_start_passes_the_input_to_the_execution_it_starts(engine: EngineProcess, client: Client) -> None:
    finished = cerebelum(
        engine, "signal-with-start", "greet", "name", "--id", "swS-2", "--input", '{"lang": "en"}', "--data", '"Bo"'
    )

    assert finished.returncode == 0, shown(finished)
    assert finished.stdout.startswith("execution/swS-2 started, signal name sent; now "), shown(finished)
    final = client.wait("swS-2", timeout=30)
    assert (final.input, final.output) == ({"lang": "en"}, "Bo")


def test_signal_with_start_of_a_workflow_that_does_not_exist_is_refused(engine: EngineProcess) -> None:
    finished = cerebelum(engine, "signal-with-start", "no-such-workflow", "name", "--id", "swS-3")

    assert finished.returncode == 1 and finished.stdout == "", shown(finished)
    assert finished.stderr.startswith("error:") and "no-such-workflow" in shown(finished)


# -- the Python clients ---------------------------------------------------------------------------


def test_the_client_signals_a_waiting_execution_and_the_step_takes_the_data(client: Client) -> None:
    execution = client.start("greet")
    waiting(client, execution.id, "wait_name")

    client.signal(execution.id, "name", {"first": "Cy"}, request_id="py-1")

    final = client.wait(execution.id, timeout=30)
    assert (final.phase, final.output) == ("Succeeded", {"first": "Cy"})
    assert final.signal_waits == () and final.queued_signals == ()
    assert (final.parent_id, final.children, final.continued_from, final.first_run_id, final.run) == (
        None,
        (),
        None,
        execution.id,
        1,
    )


def test_the_client_queues_early_signals_in_order_and_delivers_a_retried_one_once(client: Client) -> None:
    execution = client.start("two")
    waiting(client, execution.id, "first")

    client.signal(execution.id, "b", 1, request_id="b-1")
    client.signal(execution.id, "b", 1, request_id="b-1")
    queued = client.signal(execution.id, "b", 2, request_id="b-2")

    assert [(s.name, s.data) for s in queued.queued_signals] == [("b", 1), ("b", 2)]
    received = [s.received_at for s in queued.queued_signals]
    assert all(at is not None and at.tzinfo is not None for at in received)
    client.signal(execution.id, "a", 0)
    final = client.wait(execution.id, timeout=30)
    assert final.output == [0, 1], "the second step takes the oldest b"


def test_signal_with_start_from_the_client_starts_once_then_signals_the_execution_as_it_is(client: Client) -> None:
    started = client.signal_with_start("two", execution_id="swS-py", input={"k": 1}, signal="a", data="A")
    again = client.signal_with_start("two", execution_id="swS-py", input={"k": 2}, signal="b", data="B")

    assert started.id == again.id == "swS-py"
    assert again.input == {"k": 1}, "the input only starts an execution; an existing one keeps its own"
    final = client.wait("swS-py", timeout=30)
    assert (final.input, final.output) == ({"k": 1}, ["A", "B"])


async def test_the_async_client_signals_and_signals_with_start(engine: EngineProcess, client: Client) -> None:
    async with AsyncClient(engine.address) as aio:
        started = await aio.signal_with_start("greet", execution_id="swS-aio", signal="name", data="Di")
        execution = await aio.start("greet")
        waiting(client, execution.id, "wait_name")
        await aio.signal(execution.id, "name", "Ed")
        first = await aio.wait(started.id, timeout=30)
        second = await aio.wait(execution.id, timeout=30)

    assert (first.output, second.output) == ("Di", "Ed")


# -- children and continue-as-new, as the clients see them ----------------------------------------

PARENT = {"timeline": ["kid"], "steps": {"kid": {"child": {"workflow": "greet"}}}}
# Each run waits for "tick"; "again" continues as new, anything else ends the chain with it.
CHAIN = {
    "timeline": ["tick", "again"],
    "steps": {
        "tick": {"signal": {"name": "tick", "timeout": "1h"}},
        "again": {"continueAsNew": {}, "when": "steps.tick.data == 'again'"},
    },
    "output": "steps.tick.data",
}


def test_a_parent_lists_its_child_and_the_child_names_its_parent_and_step(client: Client) -> None:
    client.apply_workflow("parent", PARENT)
    parent = client.start("parent")
    children: list[str] = []

    def child_started() -> bool:
        children[:] = [child.id for child in client.get(parent.id).children]
        return bool(children) and any(w.step == "wait_name" for w in client.get(children[0]).signal_waits)

    wait_until(child_started, what="the child started and waiting for its signal")
    (kid,) = client.get(parent.id).children
    child = client.get(kid.id)

    assert (kid.step, kid.workflow, kid.phase) == ("kid", "greet", "Running")
    assert (child.parent_id, child.parent_step, child.workflow) == (parent.id, "kid", "greet")
    client.signal(kid.id, "name", "Kid")
    assert client.wait(parent.id, timeout=30).phase == "Succeeded"
    assert client.wait(kid.id, timeout=30).output == "Kid"


def test_a_chain_of_runs_is_followed_by_its_first_id(client: Client) -> None:
    client.apply_workflow("chain", CHAIN)
    first = client.start("chain", {"order": 7})
    waiting(client, first.id, "tick")

    client.signal(first.id, "tick", "again")
    ended_run = client.wait(first.id, timeout=30)
    assert ended_run.phase == "ContinuedAsNew" and ended_run.continued_as is not None
    wait_until(lambda: client.get(first.id, latest_run=True).id != first.id, what="the second run started")
    second = client.get(first.id, latest_run=True)
    assert (second.continued_from, second.first_run_id, second.run) == (first.id, first.id, 2)
    assert second.id == ended_run.continued_as
    waiting(client, second.id, "tick")
    client.signal(second.id, "tick", "stop")

    final = client.wait(first.id, timeout=30, follow_runs=True)
    assert (final.id, final.phase, final.output, final.run) == (second.id, "Succeeded", "stop", 2)


@pytest.mark.parametrize("progress", ["--no-progress", "--progress"])
def test_cli_wait_follows_the_chain_and_reports_the_run_itself_with_this_run(
    engine: EngineProcess, client: Client, progress: str
) -> None:
    client.apply_workflow("chain", CHAIN)
    first = client.start("chain")
    waiting(client, first.id, "tick")
    client.signal(first.id, "tick", "again")
    wait_until(lambda: client.get(first.id, latest_run=True).id != first.id, what="the second run started")
    second = client.get(first.id, latest_run=True)

    ended_run = cerebelum(engine, "wait", first.id, "--this-run", progress, "--timeout", "30")
    waiting(client, second.id, "tick")
    client.signal(second.id, "tick", "stop")
    chain_end = cerebelum(engine, "wait", first.id, progress, "--timeout", "30")
    described = cerebelum(engine, "describe", first.id)

    assert ended_run.returncode == 1, shown(ended_run)
    assert f"execution/{first.id} ContinuedAsNew" in ended_run.stdout
    assert f"continued as new as {second.id}; without --this-run, wait follows the chain" in shown(ended_run)
    assert described.returncode == 0, shown(described)
    assert f"Execution {second.id}" in described.stdout
    assert f"Run:       2 of the chain {first.id} (continued from {first.id})" in described.stdout
    assert f"Runs:      {first.id}, {second.id}" in described.stdout
    assert chain_end.returncode == 0, shown(chain_end)
    assert chain_end.stdout.splitlines()[0] == f"execution/{second.id} Succeeded", shown(chain_end)
