"""Workflow variables on a real engine, SQLite and PostgreSQL, as `describe` shows them (issue 16)."""

from __future__ import annotations

import json

import pytest

from cerebelum import Client
from tests.support.processes import EngineProcess, run_cli

pytestmark = pytest.mark.slow

# Approval steps need no worker: each approval counts and remembers who gave it, and the loop
# ends by its own condition on the count, kept across the backward jump.
TALLY = {
    "timeline": ["vote", "tally"],
    "vars": {"votes": 0, "voters": []},
    "steps": {
        "vote": {"approval": {}, "set": {"votes": "vars.votes + 1", "voters": "vars.voters + [result.approver]"}},
        "tally": {"timer": {"duration": "0s"}},
    },
    "branch": {"tally": [{"when": "vars.votes < 2", "goto": "vote", "maxIterations": 5}]},
    "output": "vars",
}


def test_variables_survive_a_loop_and_an_engine_sigkill_and_describe_shows_them(
    engine: EngineProcess, client: Client
) -> None:
    client.apply_workflow("tally", TALLY)
    client.start("tally", {}, execution_id="v1")
    client.approve("v1", "vote", approver="ann")
    engine.restart()  # SIGKILL between the votes: the variables are in the history

    with Client(engine.address) as again:
        again.approve("v1", "vote", approver="bob")
        finished = again.wait("v1", timeout=60)

    assert finished.phase == "Succeeded", finished.error
    assert finished.output == {"votes": 2, "voters": ["ann", "bob"]}
    assert finished.vars == {"votes": 2, "voters": ["ann", "bob"]}
    described = run_cli(engine, "describe", "v1")
    assert '  Variables: {"votes":2,"voters":["ann","bob"]}\n' in described.stdout, described.stdout
    as_json = json.loads(run_cli(engine, "describe", "v1", "-o", "json").stdout)
    assert as_json["vars"] == {"votes": 2, "voters": ["ann", "bob"]}
    history = json.loads(run_cli(engine, "history", "v1", "-o", "json").stdout)
    assert [e["data"]["values"]["votes"] for e in history if e["type"] == "VariablesSet"] == [1, 2]
