"""A CEL error parks the step; the Workflow is fixed; a redrive adopts the fix (issue 16).

On a real engine, SQLite and PostgreSQL, with approval steps (no worker): the branch rule reads a
field the approval's payload lacks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cerebelum import CerebelumError, Client
from tests.support.processes import EngineProcess, run_cli

pytestmark = pytest.mark.slow


def workflow(condition: str) -> dict[str, Any]:
    return {
        "timeline": ["gate", "big", "small"],
        "steps": {
            "gate": {"approval": {}},
            "big": {"timer": {"duration": "0s"}},
            "small": {"timer": {"duration": "0s"}},
        },
        "branch": {"gate": [{"when": condition, "goto": "big"}]},
        "output": "{'big': has(steps.big)}",
    }


def test_a_redrive_with_the_current_workflow_runs_on_the_fixed_expression(
    engine: EngineProcess, client: Client
) -> None:
    client.apply_workflow("gated", workflow("result.payload.n > 10"))
    client.start("gated", {}, execution_id="g1")
    client.approve("g1", "gate", approver="ann", payload={"m": 1})
    parked = client.wait("g1", timeout=60)
    assert parked.phase == "Failed" and "branch.gate[0]" in (parked.error or "")
    (letter,) = [d for d in client.dead_letters() if d.execution_id == "g1"]
    assert (letter.error or "").startswith("ExpressionError: ")

    client.apply_workflow("gated", workflow("has(result.payload.n) && result.payload.n > 10"))
    redriven = run_cli(engine, "dlq", "redrive", letter.id, "--with-current-workflow")
    assert redriven.returncode == 0, redriven.stderr
    client.approve("g1", "gate", approver="ann", payload={"m": 1})
    finished = client.wait("g1", timeout=60)

    assert finished.phase == "Succeeded", finished.error
    assert finished.output == {"big": True}, "the fixed rule did not jump: big ran after gate"
    history = json.loads(run_cli(engine, "history", "g1", "-o", "json").stdout)
    adopted = [e["data"]["spec_hash"] for e in history if e["type"] == "DeadLetterRedriven"]
    assert len(adopted) == 1 and adopted[0]


def test_a_redrive_refuses_a_workflow_whose_steps_changed(engine: EngineProcess, client: Client) -> None:
    client.apply_workflow("gated", workflow("result.payload.n > 10"))
    client.start("gated", {}, execution_id="g2")
    client.approve("g2", "gate", approver="ann", payload={})
    client.wait("g2", timeout=60)
    (letter,) = [d for d in client.dead_letters() if d.execution_id == "g2"]
    changed = workflow("true")
    changed["timeline"] = ["gate", "big"]
    del changed["steps"]["small"]
    client.apply_workflow("gated", changed)

    with pytest.raises(CerebelumError, match="changed its timeline or steps"):
        client.redrive(letter.id, with_current_workflow=True)
    assert client.get("g2").phase == "Failed"
