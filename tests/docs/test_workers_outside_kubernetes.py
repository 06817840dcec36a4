"""docs/workers-outside-kubernetes.md, as written: a worker reaching `cerebelum dev` as it would a
remote engine, with a token and TLS verified against the engine's CA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .blocks import marked_for
from .shell import Shell, checkout_copy, commands, shell

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

BLOCKS = marked_for(__file__)
DOC_BLOCKS = [block.text for block in BLOCKS]  # tests/docs/test_coverage.py: each is run below


@pytest.fixture
def sh(tmp_path: Path) -> Iterator[Shell]:
    # The doc's openssl writes engine.key and engine.crt where it runs: a folder linking to the checkout.
    with shell(tmp_path / "shell", cwd=checkout_copy(tmp_path / "checkout")) as opened:
        yield opened


def test_the_guide_runs_a_worker_with_a_token_and_tls_to_succeeded_and_a_caller_without_them_is_refused(
    sh: Shell,
) -> None:
    assert [b.doc for b in BLOCKS] == ["docs/workers-outside-kubernetes.md"] * 2
    engine, worker = (commands(block.text) for block in BLOCKS)
    for command in engine:
        sh.must(command)
    for command in worker:
        if command.startswith("python "):
            # The engine was started in the background just before; the reader's worker needs it up.
            sh.wait_for("the engine", "cerebelum get workflows", lambda ran: ran.returncode == 0)
        if command.startswith("cerebelum approve"):
            # "may have to be repeated until the execution reaches it"
            sh.wait_for("the approval", "cerebelum describe vm-1 -o json", lambda r: '"WaitingForApproval"' in r.stdout)
        ran = sh.must(command)
        if command.startswith("cerebelum wait"):
            assert "Succeeded" in ran.stdout, ran
    # The engine asked for the token and spoke TLS: each alone is not enough.
    no_token = sh.run("env -u CEREBELUM_TOKEN cerebelum get workflows")
    assert no_token.returncode != 0 and "Unauthenticated: no credentials" in no_token.stdout + no_token.stderr, no_token
    plaintext = sh.run("env -u CEREBELUM_TLS_CA cerebelum get workflows")
    assert plaintext.returncode != 0, plaintext
    # The worker said where it connected, on stderr, as the guide shows.
    assert "serving task queue 'infra' at localhost:7450" in sh.background_logs()
    described = sh.must("cerebelum describe vm-1 -o json")
    assert '"send_welcome_email"' in described.stdout and '"Skipped"' in described.stdout, described
