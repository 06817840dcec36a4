"""User-written expressions and patterns cannot freeze a real `cerebelum dev` for everyone else."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cerebelum import CerebelumError, Client, Execution
from tests.support.processes import EngineProcess, sqlite_engine
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

GATED: dict[str, Any] = {"timeline": ["gate"], "steps": {"gate": {"approval": {"timeout": "1h"}}}}
RANGE = "[0,1,2,3,4,5,6,7,8,9]"


def nested_all(levels: int) -> str:
    """The issue's shape: `.all()` nested over small list literals (some 250 characters at 7 levels)."""
    body = "x0 + x1 + x2 + x3 + x4 + x5 + x6 >= 0"
    for level in reversed(range(levels)):
        body = f"{RANGE}.all(x{level}, {body})"
    return body


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with sqlite_engine(tmp_path_factory.mktemp("expression-limits")) as process:
        yield process


@pytest.fixture
def client(engine: EngineProcess) -> Iterator[Client]:
    with Client(address=engine.address) as connected:
        yield connected


def in_background(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # the assertion looks at what the call raised
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def answers_within(call: Callable[[], Any], seconds: float) -> Any:
    """The call's result, failing the test if the engine does not answer in time."""
    thread, outcome = in_background(call)
    thread.join(seconds)
    assert outcome, f"the engine did not answer another client within {seconds} s"
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


def test_the_issues_costly_output_expression_is_refused_at_apply_naming_its_cost_and_the_limit(client: Client) -> None:
    expression = nested_all(7)
    assert len(expression) < 256  # the issue's was 252 characters
    started = time.monotonic()
    with pytest.raises(CerebelumError, match=r"output: CEL expression's estimated cost is [\d,]+, over the limit of"):
        client.apply_workflow("costly", {**GATED, "output": expression})
    assert time.monotonic() - started < 5


def test_a_misspelt_name_in_cel_is_refused_by_the_server_at_apply_not_by_the_execution_later(client: Client) -> None:
    with pytest.raises(
        CerebelumError, match=r"output: unknown name 'inptu'; this expression can see input, phases, steps"
    ):
        client.apply_workflow("misspelt", {**GATED, "output": "inptu.total"})
    with pytest.raises(CerebelumError, match=r"output: unknown function 'nosuchfn'"):
        client.apply_workflow("misspelt", {**GATED, "output": "nosuchfn(input)"})


def test_an_expression_whose_cost_explodes_with_run_time_data_fails_its_execution_while_another_finishes(
    client: Client,
) -> None:
    cubic = "input.items.all(a, input.items.all(b, input.items.all(c, a + b + c >= 0)))"
    client.apply_workflow("cubic", {**GATED, "output": cubic})
    heavy = client.start("cubic", {"items": list(range(1000))})  # 10^9 iterations if it were run
    light = client.start("cubic", {"items": [1, 2, 3]})
    for execution in (heavy, light):

        def gated(e: Execution = execution) -> bool:
            return client.get(e.id).phase == "WaitingForApproval"

        wait_until(gated, within=30, what="the approval gate")

    refused, _ = in_background(lambda: client.approve(heavy.id, "gate", approver="alice"))
    approved: Execution = answers_within(lambda: client.approve(light.id, "gate", approver="bob"), 10)
    assert approved.id == light.id
    finished = answers_within(lambda: client.wait(light.id, timeout=20), 25)
    assert finished.phase == "Succeeded", finished.error
    assert finished.output is True

    refused.join(20)
    final = client.wait(heavy.id, timeout=20)
    assert final.phase == "Failed"
    assert "output: CEL expression" in (final.error or "")
    assert "estimated cost" in (final.error or "") and "exceeds the limit 400,000" in (final.error or "")


def test_a_backtracking_schema_pattern_validates_in_linear_time_while_another_client_is_answered(
    client: Client,
) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}}}
    client.apply_workflow("patterned", {**GATED, "input": schema})
    # 34 characters: some 8 minutes of Python's backtracking engine, doubling with each one more.
    evil, outcome = in_background(lambda: client.start("patterned", {"name": "a" * 33 + "!"}))
    assert answers_within(lambda: client.list(workflow="cubic"), 5) is not None
    evil.join(10)
    assert outcome, "the start with the backtracking input did not answer within 10 s"
    assert isinstance(outcome[0], CerebelumError)
    assert "does not match '^(a+)+$'" in str(outcome[0])
    assert client.start("patterned", {"name": "a" * 33}).workflow == "patterned"


def test_a_schema_pattern_the_linear_engine_cannot_run_is_refused_at_apply_naming_its_place(client: Client) -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^(x)\\1$"}}}
    with pytest.raises(CerebelumError, match=r"input\.properties\.code\.pattern: regex .* is not supported"):
        client.apply_workflow("backreference", {**GATED, "input": schema})
