"""An access policy that would not be honoured as written stops the operator before it serves anyone.

Before, a `clients` rule with `namespaces` was accepted and the field ignored (a client "confined"
to team-a cancelled team-b's work), and a `workers` rule without `namespaces` granted every
namespace. The real `cerebelum operator` command is run; it must refuse at start, naming the field.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow


def refusal(finished: subprocess.CompletedProcess[str]) -> str:
    """What the command printed, with the terminal's line wrapping undone."""
    return " ".join((finished.stdout + finished.stderr).split())


def run_operator_with_policy(tmp_path: Path, policy: object) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return subprocess.run(
        [
            sys.executable,
            *("-m", "cerebelum_operator.cli", "operator"),
            *("--auth", "kubernetes", "--access-policy", str(path)),
            *("--address", "127.0.0.1:0", "--db", f"sqlite:///{tmp_path / 'engine.db'}"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_client_rule_confined_to_a_namespace_stops_the_operator_naming_the_field(tmp_path: Path) -> None:
    finished = run_operator_with_policy(
        tmp_path, {"clients": [{"subjects": ["alice"], "namespaces": ["team-a"], "queues": ["jobs"]}]}
    )
    assert finished.returncode != 0
    assert "clients[0]: ['namespaces', 'queues'] cannot confine a client" in refusal(finished)
    assert not (tmp_path / "engine.db").exists(), "nothing may be served or stored under a refused policy"


def test_a_worker_rule_without_namespaces_stops_the_operator_instead_of_granting_every_namespace(
    tmp_path: Path,
) -> None:
    finished = run_operator_with_policy(
        tmp_path, {"workers": [{"subjects": ["system:serviceaccount:team-a:*"], "queues": ["jobs"]}]}
    )
    assert finished.returncode != 0
    assert "workers[0].namespaces is required (nothing defaults to all)" in refusal(finished)
