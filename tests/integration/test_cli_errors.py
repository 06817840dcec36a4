"""Every CLI error goes to stderr with a non-zero exit, so stdout stays what scripts parse (issue 15).

They used to be printed on stdout: `id=$(cerebelum ... )` captured "error: ..." as if it were data.
A real `cerebelum dev` and the real commands, as a user runs them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebelum import Client
from tests.support.processes import EngineProcess, run_cli, sqlite_engine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with sqlite_engine(tmp_path_factory.mktemp("cli-errors")) as process:
        yield process


@pytest.fixture(scope="module")
def rejected(engine: EngineProcess) -> str:
    with Client(engine.address) as client:
        client.apply_workflow("gated", {"timeline": ["gate"], "steps": {"gate": {"approval": {}}}})
        execution = client.start("gated")
        client.reject(execution.id, "gate", approver="ann", reason="not today")
    return execution.id


def error_only(finished: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert finished.returncode == 1, (finished.stdout, finished.stderr)
    assert finished.stdout == ""
    assert finished.stderr.startswith("error: ") and "Traceback" not in finished.stderr, finished.stderr
    for text in expected:
        assert text in " ".join(finished.stderr.split()), finished.stderr


FAILING = [
    (("describe", "no-such"), "execution 'no-such' not found"),
    (("history", "no-such"), "execution 'no-such' not found"),
    (("start", "gated", "--input", "{bad"), "--input is not valid JSON"),
    (("start", "no-such-workflow"), "no-such-workflow"),
    (("approve", "no-such", "gate"), "execution 'no-such' not found"),
    (("dlq", "redrive", "no-such"), "no-such"),
    (("apply", "-f", "/no/such/file.yaml"), "cannot read /no/such/file.yaml"),
]


@pytest.mark.parametrize(("args", "expected"), [pytest.param(*case, id=" ".join(case[0])) for case in FAILING])
def test_a_command_that_fails_prints_its_error_on_stderr_only(
    engine: EngineProcess, args: tuple[str, ...], expected: str
) -> None:
    error_only(run_cli(engine, *args), expected)


MISSPELT = """\
kind: Workflow
metadata: {name: misspelt}
spec:
  timeline: [fetch, check, store]
  branch:
    check:
      - when: "inptu.retry && steps.fetc.ok"
        goto: store
"""


def test_applying_a_workflow_whose_cel_names_are_unknown_fails_naming_each_place_on_stderr(
    engine: EngineProcess, tmp_path: Path
) -> None:
    document = tmp_path / "misspelt.yaml"
    document.write_text(MISSPELT)

    error_only(
        run_cli(engine, "apply", "-f", str(document)),
        "branch.check[0].when: unknown name 'inptu'; this expression can see input, phases, result, steps, vars;"
        " did you mean 'input'?",
        "branch.check[0].when: unknown step 'fetc' in steps.fetc: it is not in the timeline; did you mean 'fetch'?",
    )
    with Client(engine.address) as client:
        assert "misspelt" not in [workflow.name for workflow in client.list_workflows()]


def test_cancelling_an_ended_execution_is_an_error_on_stderr(engine: EngineProcess, rejected: str) -> None:
    error_only(run_cli(engine, "cancel", rejected), f"execution {rejected} already ended Failed")


def test_waiting_for_a_failed_execution_prints_the_phase_on_stdout_and_the_error_on_stderr(
    engine: EngineProcess, rejected: str
) -> None:
    finished = run_cli(engine, "wait", rejected, "--no-progress")

    assert finished.returncode == 1
    assert finished.stdout.strip() == f"execution/{rejected} Failed"
    assert "error: " in finished.stderr and "rejected by ann: not today" in finished.stderr
