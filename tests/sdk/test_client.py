"""The clients turn replies into parsed models and server errors into CerebelumError subclasses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from cerebelum import (
    AsyncClient,
    CerebelumError,
    Client,
    Execution,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from cerebelum.v1 import workflow_pb2

from .fakes import FakeWorkflowService, free_port


def finished_execution() -> workflow_pb2.ExecutionInfo:
    return workflow_pb2.ExecutionInfo(
        id="ex-1",
        workflow="orders",
        phase="Succeeded",
        current_steps=[],
        input_json='{"id": "o-1"}',
        output_json="",
        error="",
        created_at_ms=1_700_000_000_000,
        updated_at_ms=1_700_000_001_500,
        wake_at_ms=0,
        event_count=7,
        steps=[
            workflow_pb2.StepInfo(
                name="charge", phase="Succeeded", attempts=2, started_at_ms=1_700_000_000_100, last_error="timeout"
            )
        ],
        pending_approvals=[
            workflow_pb2.PendingApproval(step="refund", kind="approval", data_json='{"amount": 5}', timeout_at_ms=0)
        ],
    )


@pytest.fixture
def client(workflow_service: FakeWorkflowService) -> Iterator[Client]:
    with Client(workflow_service.address, token="t0k") as client:
        yield client


def test_an_execution_has_its_json_parsed_and_its_times_as_utc_datetimes(
    client: Client, workflow_service: FakeWorkflowService
) -> None:
    workflow_service.executions["ex-1"] = finished_execution()

    execution = client.get("ex-1")

    assert isinstance(execution, Execution)
    assert (execution.id, execution.workflow, execution.phase, execution.event_count) == (
        "ex-1",
        "orders",
        "Succeeded",
        7,
    )
    assert execution.input == {"id": "o-1"}
    assert execution.output is None
    assert execution.error is None
    assert execution.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert execution.updated_at == datetime(2023, 11, 14, 22, 13, 21, 500_000, tzinfo=UTC)
    assert execution.wake_at is None
    assert execution.is_terminal
    step = execution.step("charge")
    assert step is not None
    assert (step.attempts, step.last_error, step.finished_at) == (2, "timeout", None)
    (approval,) = execution.pending_approvals
    assert (approval.step, approval.data, approval.timeout_at) == ("refund", {"amount": 5}, None)


def test_start_sends_the_input_as_json_and_the_token_as_metadata(
    client: Client, workflow_service: FakeWorkflowService
) -> None:
    execution = client.start("orders", {"id": "o-2", "items": [1, 2]}, execution_id="ex-2")
    client.start("orders")

    assert (execution.id, execution.phase, execution.input) == ("ex-2", "Pending", {"id": "o-2", "items": [1, 2]})
    (_, first), (_, second) = workflow_service.requests
    assert json.loads(first.input_json) == {"id": "o-2", "items": [1, 2]}
    assert (second.input_json, second.execution_id) == ("", "")
    assert workflow_service.metadata[0]["authorization"] == "Bearer t0k"


def test_a_missing_execution_raises_not_found_with_the_servers_message(client: Client) -> None:
    with pytest.raises(NotFoundError) as raised:
        client.get("nope")

    assert isinstance(raised.value, CerebelumError)
    assert raised.value.code == "NotFound"
    assert raised.value.message == "execution 'nope' not found"


def test_other_server_errors_map_to_their_own_classes(client: Client, workflow_service: FakeWorkflowService) -> None:
    workflow_service.executions["ex-1"] = finished_execution()

    with pytest.raises(FailedPreconditionError, match="already finished"):
        client.cancel("ex-1", reason="too late")
    with pytest.raises(InvalidArgumentError) as raised:
        client.apply_workflow("bad", [])  # type: ignore[arg-type]
    assert raised.value.code == "InvalidArgument"


def test_an_unreachable_server_raises_unavailable() -> None:
    with Client(f"127.0.0.1:{free_port()}", timeout=5) as client, pytest.raises(UnavailableError) as raised:
        client.get("ex-1")
    assert raised.value.code == "Unavailable"


def test_apply_workflow_round_trips_the_spec(client: Client) -> None:
    info = client.apply_workflow("orders", {"taskQueue": "orders", "steps": [{"name": "charge"}]})

    assert (info.name, info.version) == ("orders", 3)
    assert info.spec == {"taskQueue": "orders", "steps": [{"name": "charge"}]}
    assert info.updated_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_wait_asks_again_until_the_execution_is_terminal(client: Client, workflow_service: FakeWorkflowService) -> None:
    running = workflow_pb2.ExecutionInfo(id="ex-1", phase="Running")
    workflow_service.wait_replies = [running, running, finished_execution()]

    execution = client.wait("ex-1")

    assert execution.phase == "Succeeded"
    waits = [request for method, request in workflow_service.requests if method == "WaitExecution"]
    assert [request.wait_ms for request in waits] == [30_000, 30_000, 30_000]


def test_wait_raises_timeout_error_when_the_execution_does_not_finish_in_time(
    client: Client, workflow_service: FakeWorkflowService
) -> None:
    workflow_service.executions["ex-1"] = workflow_pb2.ExecutionInfo(id="ex-1", phase="Sleeping")

    with pytest.raises(TimeoutError, match="still Sleeping"):
        client.wait("ex-1", timeout=0.2)

    waits = [request for method, request in workflow_service.requests if method == "WaitExecution"]
    assert waits
    assert all(request.wait_ms <= 200 for request in waits)


def test_history_pages_through_every_event(client: Client, workflow_service: FakeWorkflowService) -> None:
    workflow_service.history = [
        workflow_pb2.HistoryEvent(
            seq=seq, type="StepCompleted", at_ms=1_700_000_000_000 + seq, data_json=f'{{"n": {seq}}}'
        )
        for seq in range(1, 6)
    ]

    events = client.history("ex-1")
    tail = client.history("ex-1", after_seq=3)

    assert [event.seq for event in events] == [1, 2, 3, 4, 5]
    assert [event.data for event in events] == [{"n": n} for n in range(1, 6)]
    assert events[0].at == datetime(2023, 11, 14, 22, 13, 20, 1000, tzinfo=UTC)
    assert [event.seq for event in tail] == [4, 5]
    after = [request.after_seq for method, request in workflow_service.requests if method == "GetHistory"]
    assert after == [0, 2, 4, 5, 3, 5]


def test_approve_reject_and_redrive_send_what_they_are_given(
    client: Client, workflow_service: FakeWorkflowService
) -> None:
    workflow_service.executions["ex-1"] = finished_execution()
    workflow_service.dead_letters = [
        workflow_pb2.DeadLetter(id="dl-1", execution_id="ex-1", step="charge", attempt=3, error="boom", created_at_ms=0)
    ]

    client.approve("ex-1", "refund", approver="ana", payload={"ok": True})
    client.reject("ex-1", "refund", approver="bob", reason="no")
    (letter,) = client.dead_letters(execution_id="ex-1")
    redriven = client.redrive(letter.id)

    _, approve = workflow_service.requests[0]
    _, reject = workflow_service.requests[1]
    assert (approve.id, approve.step, approve.approver, json.loads(approve.payload_json)) == (
        "ex-1",
        "refund",
        "ana",
        {"ok": True},
    )
    assert (reject.approver, reject.reason) == ("bob", "no")
    assert (letter.step, letter.attempt, letter.error, letter.created_at) == ("charge", 3, "boom", None)
    assert redriven.id == "ex-1"
    assert client.dead_letters(execution_id="other") == []


def test_list_filters_by_workflow_and_phase(client: Client, workflow_service: FakeWorkflowService) -> None:
    workflow_service.executions["ex-1"] = finished_execution()

    executions = client.list(workflow="orders", phase="Succeeded", limit=10)

    assert [execution.id for execution in executions] == ["ex-1"]
    _, request = workflow_service.requests[-1]
    assert (request.workflow, request.phase, request.limit) == ("orders", "Succeeded", 10)


def test_list_page_sends_every_filter_and_returns_the_next_token(
    client: Client, workflow_service: FakeWorkflowService
) -> None:

    page = client.list_page(
        phases=["Failed", "Cancelled"],
        labels={"team": "billing"},
        created_after=datetime(2024, 5, 1, tzinfo=UTC),
        created_before=datetime(2024, 5, 2, tzinfo=UTC),
        id_contains="ord",
        page_token="tok",
        limit=5,
    )

    _, request = workflow_service.requests[-1]
    assert (request.phase, list(request.phases), dict(request.labels)) == (
        "",
        ["Failed", "Cancelled"],
        {"team": "billing"},
    )
    assert (request.created_after.ToSeconds(), request.created_before.ToSeconds()) == (1714521600, 1714608000)
    assert (request.id_contains, request.page_token, request.limit) == ("ord", "tok", 5)
    assert page.next_page_token is None  # the fake answers one page
    with pytest.raises(ValueError, match="must be an aware datetime"):
        client.list_page(created_after=datetime(2024, 5, 1))


async def test_the_async_client_has_the_same_methods_and_errors(workflow_service: FakeWorkflowService) -> None:
    workflow_service.executions["ex-1"] = finished_execution()
    workflow_service.wait_replies = [workflow_pb2.ExecutionInfo(id="ex-1", phase="Running"), finished_execution()]

    async with AsyncClient(workflow_service.address) as client:
        started = await client.start("orders", [1, 2], execution_id="ex-3")
        execution = await client.wait("ex-1", timeout=10)
        with pytest.raises(NotFoundError, match="not found"):
            await client.get("missing")

    assert started.input == [1, 2]
    assert execution.phase == "Succeeded"
    assert execution.input == {"id": "o-1"}


def test_the_sync_and_async_clients_offer_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in vars(cls) if not name.startswith("_")}

    assert public(Client) - {"close"} == public(AsyncClient) - {"close"}
