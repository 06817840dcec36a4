"""A loop cut at its maxIterations, as a user sees it in `describe` and `history` on a real `cerebelum dev` (issue 16)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebelum import Client, JumpLimit
from tests.support.processes import EngineProcess, run_cli, sqlite_engine

pytestmark = pytest.mark.slow

# Approval steps need no worker: each approval of `gate` asks to go round again.
LOOP = {
    "timeline": ["gate"],
    "steps": {"gate": {"approval": {"timeout": "1h"}}},
    "branch": {"gate": [{"when": "result.approved == true", "goto": "gate", "maxIterations": 1}]},
}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    with sqlite_engine(tmp_path) as process:
        yield process


def test_describe_and_history_say_the_loop_was_cut_though_the_execution_succeeded(engine: EngineProcess) -> None:
    with Client(engine.address) as client:
        client.apply_workflow("loop", LOOP)
        client.start("loop", {}, execution_id="l1")
        client.approve("l1", "gate", approver="ann")
        client.approve("l1", "gate", approver="ann")
        finished = client.wait("l1", timeout=30)

    assert finished.phase == "Succeeded"
    assert finished.jump_limits == (JumpLimit(rule="branch.gate[0]", step="gate", target="gate", bound=1, times=1),)
    described = run_cli(engine, "describe", "l1")
    assert described.returncode == 0, described.stderr
    assert "Loop cut: branch.gate[0] stopped jumping from gate back to gate after 1 (maxIterations)" in " ".join(
        described.stdout.split()
    )
    as_json = json.loads(run_cli(engine, "describe", "l1", "-o", "json").stdout)
    assert as_json["jumpLimits"] == [
        {"rule": "branch.gate[0]", "step": "gate", "target": "gate", "bound": 1, "times": 1}
    ]
    history = json.loads(run_cli(engine, "history", "l1", "-o", "json").stdout)
    cut = [e for e in history if e["type"] == "JumpLimitReached"]
    assert [e["data"] for e in cut] == [{"step": "gate", "target": "gate", "bound": 1, "rule": "branch.gate[0]"}]
    table = run_cli(engine, "history", "l1").stdout
    assert "JumpLimitReached" in table
