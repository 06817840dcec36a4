"""User text printed by the CLI is shown as written, never read as Rich markup.

An error containing `[/path]` used to crash `wait`, `describe` and `history` with a MarkupError
traceback, and `[red]` vanished from messages (issue 15). A real `cerebelum dev` and the real
commands, as a user runs them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from cerebelum import Client
from tests.support.processes import EngineProcess, run_cli, sqlite_engine

pytestmark = pytest.mark.slow

REASON = "disk [/path] is full; see [red]alerts[/red] and [bold]"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with sqlite_engine(tmp_path_factory.mktemp("cli-text")) as process:
        yield process


def cerebelum(engine: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(engine, *args)


def shown(finished: subprocess.CompletedProcess[str]) -> str:
    """What the command printed, with the terminal's line wrapping undone."""
    return " ".join((finished.stdout + finished.stderr).split())


@pytest.fixture(scope="module")
def rejected(engine: EngineProcess) -> str:
    with Client(engine.address) as client:
        client.apply_workflow("gated", {"timeline": ["gate"], "steps": {"gate": {"approval": {"timeout": "1h"}}}})
        execution = client.start("gated")
    rejecting = cerebelum(engine, "reject", execution.id, "gate", "--reason", REASON)
    assert rejecting.returncode == 0, shown(rejecting)
    return execution.id


@pytest.mark.parametrize("command", ["wait", "describe", "history"])
def test_an_error_that_looks_like_markup_is_printed_as_written(
    engine: EngineProcess, rejected: str, command: str
) -> None:
    finished = cerebelum(engine, command, rejected)

    assert "Traceback" not in finished.stderr, finished.stderr
    assert REASON in shown(finished)
    assert finished.returncode == (1 if command == "wait" else 0), shown(finished)


def test_a_failure_message_that_looks_like_markup_keeps_its_brackets(engine: EngineProcess) -> None:
    finished = cerebelum(engine, "describe", "no-such-[red]execution[/red]")

    assert finished.returncode == 1
    assert "execution 'no-such-[red]execution[/red]' not found" in shown(finished)


# -- output for scripts: `-o json|yaml` on every command that prints a table, times in RFC 3339 --

RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


@pytest.mark.parametrize(
    "command",
    [("get", "executions"), ("get", "workflows"), ("dlq", "list"), ("describe", "ID"), ("history", "ID")],
    ids=" ".join,
)
@pytest.mark.parametrize("output", ["json", "yaml"])
def test_every_command_that_prints_a_table_also_prints_json_and_yaml(
    engine: EngineProcess, rejected: str, command: tuple[str, ...], output: str
) -> None:
    import json

    import yaml

    args = [rejected if part == "ID" else part for part in command]
    finished = cerebelum(engine, *args, "-o", output)

    assert finished.returncode == 0, shown(finished)
    document = json.loads(finished.stdout) if output == "json" else yaml.safe_load(finished.stdout)
    assert isinstance(document, list | dict), finished.stdout  # a table would parse as text, or not at all


def test_describe_as_json_says_everything_the_table_shows_with_rfc3339_times(
    engine: EngineProcess, rejected: str
) -> None:
    import json
    import re

    document = json.loads(cerebelum(engine, "describe", rejected, "-o", "json").stdout)

    assert document["phase"] == "Failed" and REASON in document["error"]
    for field in ("createdAt", "updatedAt"):
        assert re.match(RFC3339, document[field]), document[field]
    (step,) = document["steps"]
    assert step["name"] == "gate" and re.match(RFC3339, step["startedAt"]), step
    events = json.loads(cerebelum(engine, "history", rejected, "-o", "json").stdout)
    assert all(re.match(RFC3339, event["at"]) for event in events), events


def test_an_output_format_the_cli_does_not_know_is_refused_naming_the_choices(
    engine: EngineProcess, rejected: str
) -> None:
    finished = cerebelum(engine, "describe", rejected, "-o", "xml")

    assert finished.returncode == 2
    assert "'xml' is not one of" in shown(finished) and "'table', 'json', 'yaml'" in shown(finished)
