"""docs/schedules.md's samples (and coming-from-temporal.md's cron one), run as written against a real
`cerebelum dev` on SQLite."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebelum import Client
from tests.support.processes import EngineProcess, run_cli

from .blocks import Block, marked_for
from .shell import commands

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

BLOCKS = marked_for(__file__)
DOC_BLOCKS = [block.text for block in BLOCKS]  # tests/docs/test_coverage.py: each is run below
HELLO = {"taskQueue": "hello", "timeline": ["greet"]}


def the_block(language: str, doc: str = "docs/schedules.md") -> Block:
    found = [b for b in BLOCKS if b.language == language and b.doc == doc]
    assert len(found) == 1, f"one {language} block of {doc} marked for this module, found {len(found)}"
    return found[0]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    process = EngineProcess(database_url=f"sqlite:///{tmp_path / 'engine.db'}", log_path=tmp_path / "engine.log")
    process.start()
    with Client(address=process.address) as client:
        client.apply_workflow("hello", HELLO)  # the doc's "any workflow you applied"
        client.apply_workflow("greeting", HELLO)  # coming-from-temporal.md's
    yield process
    process.stop()


def test_the_first_schedule_commands_run_as_written(engine: EngineProcess) -> None:
    outputs: dict[str, str] = {}
    for command in commands(the_block("sh").text):
        words = shlex.split(command)
        assert words[0] == "cerebelum", command
        ran = run_cli(engine, *words[1:])
        assert ran.returncode == 0, f"$ {command}\n{ran.stdout}{ran.stderr}"
        outputs[words[2]] = ran.stdout
    assert "schedule/greet-every-minute created; next fire" in outputs["create"]
    assert "* * * * * (UTC)" in outputs["list"]
    assert "Next fire:" in outputs["describe"]
    assert "execution/greet-every-minute-trigger-" in outputs["trigger"]
    assert "schedule/greet-every-minute deleted" in outputs["delete"]


def test_the_schedule_document_is_created_as_written(engine: EngineProcess, tmp_path: Path) -> None:
    document = tmp_path / "nightly.yaml"
    document.write_text(the_block("yaml").text)
    created = run_cli(engine, "schedule", "create", "-f", str(document))
    assert created.returncode == 0, created.stderr
    described = run_cli(engine, "schedule", "describe", "nightly-report", "-o", "json")
    schedule = json.loads(described.stdout)
    assert schedule["spec"]["timezone"] == "Europe/Paris"
    assert schedule["spec"]["jitter"] == "5m"
    assert schedule["nextDue"].endswith(("T01:30:00.000Z", "T00:30:00.000Z")), "02:30 in Paris, winter or summer"


def test_the_python_sample_runs_as_written(engine: EngineProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEREBELUM_ADDRESS", engine.address)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(the_block("python").text, "docs/schedules.md", "exec"), {})  # the doc's sample
    lines = printed.getvalue().splitlines()
    assert lines[1].startswith("every-ten-minutes-trigger-"), lines
    with Client(address=engine.address) as client:
        assert client.list_schedules() == [], "the sample deletes what it created"


def test_temporals_hello_cron_as_a_schedule_runs_as_written(engine: EngineProcess) -> None:
    (command,) = commands(the_block("sh", "docs/coming-from-temporal.md").text)
    ran = run_cli(engine, *shlex.split(command)[1:])
    assert ran.returncode == 0, ran.stderr
    described = json.loads(run_cli(engine, "schedule", "describe", "hello-cron", "-o", "json").stdout)
    assert described["spec"]["cron"] == "* * * * *"
    assert described["nextDue"].endswith(":00.000Z"), "every minute, on the minute"
