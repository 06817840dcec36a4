"""What a new user trips on in the CLI's commands (issue 15): each as a user runs it, against a real `cerebelum dev`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebelum import Client
from tests.support.processes import ROOT, EngineProcess, run_cli, sqlite_engine

pytestmark = pytest.mark.slow

GATED = {"timeline": ["gate"], "steps": {"gate": {"approval": {"timeout": "1h"}}}}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with sqlite_engine(tmp_path_factory.mktemp("cli-commands")) as process:
        yield process


@pytest.fixture(scope="module")
def client(engine: EngineProcess) -> Iterator[Client]:
    with Client(engine.address) as client:
        client.apply_workflow("gated", GATED)
        yield client


def cerebelum(engine: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(engine, *args)


def shown(finished: subprocess.CompletedProcess[str]) -> str:
    """What the command printed, with the terminal's line wrapping undone."""
    return " ".join((finished.stdout + finished.stderr).split())


# -- get executions -----------------------------------------------------------------------------


def test_a_phase_that_does_not_exist_is_refused_naming_the_phases(engine: EngineProcess, client: Client) -> None:
    finished = cerebelum(engine, "get", "executions", "--phase", "Bogus")

    assert finished.returncode == 2, shown(finished)
    assert "'Bogus' is not one of" in shown(finished)
    for phase in ("'Pending'", "'Running'", "'WaitingForApproval'", "'Succeeded'", "'Failed'", "'Cancelled'"):
        assert phase in shown(finished)
    client.apply_workflow("phased", GATED)
    client.start("phased")
    cancelled = client.cancel(client.start("phased").id)
    known = cerebelum(engine, "get", "executions", "--workflow", "phased", "--phase", "Cancelled", "-o", "json")
    assert known.returncode == 0, shown(known)
    assert [e["id"] for e in json.loads(known.stdout)] == [cancelled.id]


def test_a_table_cut_short_by_the_limit_says_so_on_stderr_and_json_and_yaml_stay_clean(
    engine: EngineProcess, client: Client
) -> None:
    import yaml

    client.apply_workflow("listed", GATED)
    listed = [client.start("listed").id for _ in range(3)]

    cut = cerebelum(engine, "get", "executions", "--workflow", "listed", "--limit", "2")

    assert cut.returncode == 0, shown(cut)
    assert sum(line.split()[0] in listed for line in cut.stdout.splitlines() if line.split()) == 2
    assert " ".join(cut.stderr.split()).startswith("showing 2; --limit to see more, or --page-token ")
    whole = cerebelum(engine, "get", "executions", "--workflow", "listed", "--limit", "3")
    assert whole.returncode == 0 and whole.stderr == "", shown(whole)
    assert all(id in whole.stdout for id in listed)
    for output in ("json", "yaml"):
        data = cerebelum(engine, "get", "executions", "--workflow", "listed", "--limit", "2", "-o", output)
        assert data.returncode == 0 and data.stderr == "", shown(data)
        assert [e["id"] for e in yaml.safe_load(data.stdout)] == listed[:0:-1]


def test_labels_given_at_start_filter_the_listing_with_phases_times_and_id_text_page_by_page(
    engine: EngineProcess, client: Client
) -> None:
    client.apply_workflow("labelled", GATED)
    for n in range(3):
        started = cerebelum(engine, "start", "labelled", "--id", f"lab-{n}", "--label", "team=billing", "-l", f"n={n}")
        assert started.returncode == 0, shown(started)
    cerebelum(engine, "start", "labelled", "--id", "lab-other", "--label", "team=ops")
    client.cancel("lab-0")
    assert client.get("lab-1").labels == {"team": "billing", "n": "1"}

    def listed(*args: str) -> list[str]:
        finished = cerebelum(engine, "get", "executions", "--workflow", "labelled", *args, "-o", "json")
        assert finished.returncode == 0, shown(finished)
        return [e["id"] for e in json.loads(finished.stdout)]

    assert listed("--label", "team=billing") == ["lab-2", "lab-1", "lab-0"]
    assert listed("--label", "team=billing", "--label", "n=2") == ["lab-2"]
    assert listed("--phase", "Cancelled", "--phase", "Succeeded") == ["lab-0"]
    assert listed("--id-contains", "LAB-O") == ["lab-other"]
    assert listed("--since", "2000-01-01T00:00:00Z", "--until", "2000-01-02T00:00:00+02:00") == []
    assert len(listed("--since", "2000-01-01T00:00:00Z")) == 4

    ids: list[str] = []
    token = ""
    for _ in range(3):  # pages of 2 until there is no next one
        page = json.loads(
            cerebelum(
                engine,
                "get",
                "executions",
                "--label",
                "team=billing",
                "--limit",
                "2",
                "--page-token",
                token,
                "-o",
                "json",
            ).stdout
        )
        ids += [e["id"] for e in page["executions"]]
        token = page["nextPageToken"]
        if token is None:
            break
    assert ids == ["lab-2", "lab-1", "lab-0"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("start", "labelled", "--label", "team"), "--label 'team': write KEY=VALUE"),
        (("start", "labelled", "--label", "team=no way"), "label 'team'='no way'"),
        (("get", "executions", "--since", "yesterday"), "--since 'yesterday' is not an RFC 3339 time"),
        (("get", "executions", "--until", "2024-05-01T12:00:00"), "has no time zone"),
        (("get", "executions", "--page-token", "garbage!"), "page_token: not a page token"),
    ],
)
def test_a_bad_label_time_or_page_token_is_refused_naming_it(
    engine: EngineProcess, client: Client, args: tuple[str, ...], message: str
) -> None:
    client.apply_workflow("labelled", GATED)
    finished = cerebelum(engine, *args)
    assert finished.returncode != 0
    assert message in shown(finished)


# -- history and wording ------------------------------------------------------------------------


def test_an_event_of_no_step_shows_an_empty_step_not_none(engine: EngineProcess, client: Client) -> None:
    client.apply_workflow("badoutput", {**GATED, "output": "steps.gate.nosuchfield"})
    execution = client.start("badoutput")
    assert client.approve(execution.id, "gate", approver="me").phase == "Failed"

    finished = cerebelum(engine, "history", execution.id)

    assert finished.returncode == 0, shown(finished)
    (failed,) = [line for line in finished.stdout.splitlines() if "ExecutionFailed" in line]
    assert "None" not in failed.split(), failed


# -- cancel -------------------------------------------------------------------------------------


def test_cancelling_an_execution_twice_cancels_it_then_says_it_already_ended(
    engine: EngineProcess, client: Client
) -> None:
    execution = client.start("gated")

    first = cerebelum(engine, "cancel", execution.id)
    second = cerebelum(engine, "cancel", execution.id)

    assert first.returncode == 0 and shown(first) == f"execution/{execution.id} Cancelled", shown(first)
    assert second.returncode == 1, shown(second)
    assert f"execution {execution.id} already ended Cancelled; nothing to cancel" in shown(second)


def test_cancelling_a_succeeded_execution_names_its_phase_and_fails(engine: EngineProcess, client: Client) -> None:
    execution = client.start("gated")
    client.approve(execution.id, "gate", approver="me")

    finished = cerebelum(engine, "cancel", execution.id)

    assert finished.returncode == 1, shown(finished)
    assert f"execution {execution.id} already ended Succeeded; nothing to cancel" in shown(finished)
    assert client.get(execution.id).phase == "Succeeded"


# -- start --------------------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_start_prints_the_execution_for_scripts_saying_it_started_it(
    engine: EngineProcess, client: Client, output: str
) -> None:
    import yaml

    finished = cerebelum(engine, "start", "gated", "--input", '{"n": 1}', "-o", output)

    assert finished.returncode == 0, shown(finished)
    document = yaml.safe_load(finished.stdout)
    assert document["workflow"] == "gated" and document["started"] is True and document["input"] == {"n": 1}
    assert client.get(document["id"]).phase == "WaitingForApproval"


def test_starting_an_existing_id_again_says_it_was_not_started_again(engine: EngineProcess, client: Client) -> None:
    first = cerebelum(engine, "start", "gated", "--id", "again-1", "--input", '{"n": 1}')
    again = cerebelum(engine, "start", "gated", "--id", "again-1", "--input", '{"n": 1}')
    as_json = cerebelum(engine, "start", "gated", "--id", "again-1", "--input", '{"n": 1}', "-o", "json")

    assert first.returncode == 0 and shown(first) == "execution/again-1 started", shown(first)
    assert again.returncode == 0 and shown(again) == "execution/again-1 already exists (not started again)"
    assert as_json.returncode == 0, shown(as_json)
    assert json.loads(as_json.stdout)["started"] is False and json.loads(as_json.stdout)["id"] == "again-1"


def test_starting_an_existing_id_with_another_input_is_refused_naming_the_id(
    engine: EngineProcess, client: Client
) -> None:
    client.start("gated", {"n": 1}, execution_id="differs-1")

    finished = cerebelum(engine, "start", "gated", "--id", "differs-1", "--input", '{"n": 2}')

    assert finished.returncode == 1, shown(finished)
    assert "execution 'differs-1' already exists with a different input" in shown(finished)
    assert "started" not in shown(finished).replace("not started again", "")
    assert client.get("differs-1").input == {"n": 1}


# -- approve ------------------------------------------------------------------------------------


def test_approving_a_step_the_workflow_does_not_have_names_it_and_the_pending_ones(
    engine: EngineProcess, client: Client
) -> None:
    execution = client.start("gated")

    finished = cerebelum(engine, "approve", execution.id, "nosuchstep")

    assert finished.returncode == 1, shown(finished)
    assert "workflow 'gated' has no step 'nosuchstep' (its steps: gate)" in shown(finished)
    assert f"execution '{execution.id}' waits for the approval of: gate" in shown(finished)
    assert client.get(execution.id).phase == "WaitingForApproval"


def test_a_start_without_the_input_the_workflow_requires_says_to_pass_one(
    engine: EngineProcess, client: Client
) -> None:
    client.apply_workflow("needy", {**GATED, "input": {"type": "object", "required": ["region"]}})

    missing = cerebelum(engine, "start", "needy")
    wrong = cerebelum(engine, "start", "needy", "--input", "{}")

    assert missing.returncode == 1, shown(missing)
    assert "the workflow 'needy' requires an input (an object) and none was given; pass --input '{...}'" in shown(
        missing
    )
    assert "None is not of type" not in shown(missing)
    assert wrong.returncode == 1 and "'region' is a required property" in shown(wrong), shown(wrong)


# -- apply --------------------------------------------------------------------------------------

MIXED = """\
apiVersion: cerebelum.io/v1alpha1
kind: Workflow
metadata: {name: first-good}
spec: {timeline: [a]}
---
apiVersion: cerebelum.io/v1alpha1
kind: Workflow
metadata: {name: no-retries}
spec:
  timeline: [a]
  steps: {a: {retry: {maxAttempts: 0}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
---
apiVersion: cerebelum.io/v1alpha1
kind: Workflow
metadata: {name: last-good}
spec: {timeline: [b]}
"""


def test_a_file_with_invalid_documents_applies_none_and_names_each_bad_one(
    engine: EngineProcess, client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(MIXED)

    finished = cerebelum(engine, "apply", "-f", str(path))

    assert finished.returncode == 1, shown(finished)
    assert "nothing applied: 2 of 4 documents are invalid" in shown(finished)
    assert "document 2 (no-retries): spec: steps.a.retry.maxAttempts" in shown(finished)
    assert "document 3 (settings): kind 'ConfigMap' is not supported here" in shown(finished)
    assert not {"first-good", "no-retries", "last-good"} & {w.name for w in client.list_workflows()}
    path.write_text(MIXED.split("---\n")[0] + "---\n" + MIXED.split("---\n")[3])
    fixed = cerebelum(engine, "apply", "-f", str(path))
    assert fixed.returncode == 0, shown(fixed)
    assert {"first-good", "last-good"} <= {w.name for w in client.list_workflows()}


# -- wait ---------------------------------------------------------------------------------------

TWO_GATES = {"timeline": ["first", "second"], "steps": {"first": {"approval": {}}, "second": {"approval": {}}}}


def test_wait_with_progress_prints_each_step_it_reaches_on_stderr_and_the_end_on_stdout(
    engine: EngineProcess, client: Client
) -> None:
    client.apply_workflow("two-gates", TWO_GATES)
    execution = client.start("two-gates")
    command = [sys.executable, "-m", "cerebelum_operator.cli", "wait", execution.id, "--progress"]
    waiting = subprocess.Popen(
        [*command, "--address", engine.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert waiting.stderr is not None
        first = waiting.stderr.readline()  # blocks until the command has printed it
        client.approve(execution.id, "first", approver="me")
        second = waiting.stderr.readline()
        client.approve(execution.id, "second", approver="me")
        stdout, rest = waiting.communicate(timeout=60)
    finally:
        waiting.kill()

    assert first.strip() == f"execution/{execution.id} WaitingForApproval (step first)"
    assert second.strip() == f"execution/{execution.id} WaitingForApproval (step second)"
    assert rest == "" and waiting.returncode == 0
    assert stdout.splitlines()[0] == f"execution/{execution.id} Succeeded"
