"""The input schema's defaults, as a user sees them through `cerebelum start` on a real `cerebelum dev` (issue 16)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebelum import Client
from tests.support.processes import EngineProcess, run_cli, sqlite_engine

pytestmark = pytest.mark.slow

ORDERS = {
    "timeline": ["gate"],
    "steps": {"gate": {"approval": {"timeout": "1h"}}},
    "input": {
        "type": "object",
        "required": ["id", "shipping"],
        "properties": {
            "id": {"type": "string"},
            "currency": {"default": "EUR"},
            "shipping": {"type": "object", "default": {}, "properties": {"speed": {"default": "slow"}}},
        },
    },
}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    with sqlite_engine(tmp_path) as process:
        yield process


def test_cerebelum_start_records_the_input_with_its_schemas_defaults_filled_in(engine: EngineProcess) -> None:
    with Client(engine.address) as client:
        client.apply_workflow("orders", ORDERS)
        started = run_cli(engine, "start", "orders", "--id", "d1", "--input", '{"id": "o-1"}', "-o", "json")
        again = run_cli(engine, "start", "orders", "--id", "d1", "--input", '{"id": "o-1"}')

        filled = {"id": "o-1", "currency": "EUR", "shipping": {"speed": "slow"}}
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout)["input"] == filled
        assert client.get("d1").input == filled, "GetExecution shows what ExecutionStarted recorded"
        assert [e.data["input"] for e in client.history("d1") if e.type == "ExecutionStarted"] == [filled]
        # The same start again is the same start, not a conflict with the filled input.
        assert again.returncode == 0 and "already exists (not started again)" in again.stdout, again.stderr
