"""The samples that run against `cerebelum dev`, as written, in a shell of their own.

Each shell block runs one command at a time in one bash (tests/docs/shell.py), the way a reader
types it; between two commands the harness may wait for what the doc says the reader waits for
(a human approval is due). A placeholder the doc shows in angle brackets is replaced by what the
reader would type: `<id>` by the id `cerebelum start` printed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cerebelum_operator.api.access import AccessPolicy

from .blocks import Block, marked_for
from .shell import Shell, commands, shell

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

BLOCKS = marked_for(__file__)
DOC_BLOCKS = [block.text for block in BLOCKS]  # tests/docs/test_coverage.py: each is run below


def the_block(doc: str, first_line: str) -> Block:
    found = [b for b in BLOCKS if b.doc == doc and b.text.startswith(first_line)]
    assert len(found) == 1, f"{doc}: one block marked for this module starting {first_line!r}, found {len(found)}"
    return found[0]


@pytest.fixture
def sh(tmp_path: Path) -> Iterator[Shell]:
    with shell(tmp_path) as opened:
        yield opened


@pytest.fixture
def online_sh(tmp_path: Path) -> Iterator[Shell]:
    """On the machine's network: pip fetches the SDK's build backend and dependencies."""
    with shell(tmp_path, network=True) as opened:
        yield opened


def test_every_block_marked_for_this_module_has_a_test_here() -> None:
    handled = {
        ("README.md", "source scripts/setup.sh"),
        ("docs/reliability.md", "workers:"),
        ("worker-sdk/python/README.md", "pip install ./worker-sdk/python"),
    }
    unhandled = [b.where for b in BLOCKS if not any(b.doc == d and b.text.startswith(f) for d, f in handled)]
    assert not unhandled, f"marked run: {__file__} but not run here: {unhandled}"


def test_the_readme_tour_runs_as_written_to_succeeded(sh: Shell) -> None:
    execution_id = "<id>"
    for command in commands(the_block("README.md", "source scripts/setup.sh").text):
        command = command.replace("<id>", execution_id)
        if command.startswith("python examples/provision/worker.py"):
            # `cerebelum dev &` was started just before: the reader's next command needs it up.
            sh.wait_for("the engine", "cerebelum get workflows", lambda ran: ran.returncode == 0)
        if command.startswith("cerebelum approve"):
            # "the workflow waits for a human here": the reader approves once it does.
            sh.wait_for(
                "the approval",
                f"cerebelum describe {execution_id} -o json",
                lambda ran: '"WaitingForApproval"' in ran.stdout,
            )
        ran = sh.must(command)
        if command.startswith("cerebelum start"):
            match = re.fullmatch(r"execution/(\S+) started\n", ran.stdout)
            assert match is not None, ran
            execution_id = match.group(1)
        if command.startswith("cerebelum get executions"):
            assert execution_id in ran.stdout and "provision-server" in ran.stdout, ran
            # The comment names the table's columns.
            columns = command.split("#", 1)[1].strip().split(", ")
            assert " ".join(ran.stdout.splitlines()[0].split()) == " ".join(columns), ran
        if command.startswith("cerebelum wait"):
            assert "Succeeded" in ran.stdout, ran
        if command.startswith("cerebelum history"):
            for kind in ("StepFailed", "StepRetryAfter", "ApprovalGranted", "SleepStarted", "ExecutionSucceeded"):
                assert kind in ran.stdout, f"{kind} missing from\n{ran}"
    assert execution_id != "<id>", "the tour started nothing"


def test_the_access_policy_sample_is_accepted_as_the_operator_reads_access_policy_files() -> None:
    block = the_block("docs/reliability.md", "workers:")
    # `cerebelum operator --access-policy FILE` reads the file with exactly this.
    policy = AccessPolicy.from_document(yaml.safe_load(block.text))
    assert len(policy.workers) == 1 and len(policy.clients) == 1


def test_the_python_sdk_installs_from_a_checkout_as_its_readme_says(online_sh: Shell, tmp_path: Path) -> None:
    sh = online_sh
    (command,) = commands(the_block("worker-sdk/python/README.md", "pip install ./worker-sdk/python").text)
    # The reader's own virtualenv (harness), then the command as written, from the checkout's root.
    sh.must(f"python3 -m venv {tmp_path / 'venv'} && . {tmp_path / 'venv'}/bin/activate", timeout=120)
    sh.must(command, timeout=280)
    imported = sh.must("python -c 'import cerebelum, sys; print(cerebelum.Worker.__name__, sys.prefix)'")
    assert imported.stdout.split() == ["Worker", str(tmp_path / "venv")], imported
