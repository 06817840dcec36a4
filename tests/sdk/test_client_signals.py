"""Signals, children and continue-as-new in the clients (issue 17): what the requests carry, and
what the new ExecutionInfo fields become in the ``Execution`` model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from cerebelum import (
    TERMINAL_PHASES,
    AsyncClient,
    ChildExecution,
    Client,
    Execution,
    NotFoundError,
    QueuedSignal,
    SignalWait,
)
from cerebelum.v1 import workflow_pb2

from .fakes import FakeWorkflowService


@pytest.fixture
def client(workflow_service: FakeWorkflowService) -> Iterator[Client]:
    with Client(workflow_service.address) as client:
        yield client


def at(ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def child_run() -> workflow_pb2.ExecutionInfo:
    """A second run of a chain, started as a child, with signals queued and a step waiting for one."""
    return workflow_pb2.ExecutionInfo(
        id="order-7-run-2",
        workflow="orders",
        phase="WaitingForSignal",
        queued_signals=[
            workflow_pb2.QueuedSignal(
                name="paid", data_json='{"amount": 12}', sender="alice", received_at=at(1_700_000_000_250)
            ),
            workflow_pb2.QueuedSignal(name="note", data_json="", sender="system:serviceaccount:shop:bot"),
        ],
        signal_waits=[
            workflow_pb2.SignalWait(step="await_shipping", name="shipped", timeout_at=at(1_700_003_600_000)),
            workflow_pb2.SignalWait(step="await_cancel", name="cancel"),
        ],
        parent_id="batch-1",
        parent_step="each_order",
        children=[
            workflow_pb2.ChildExecution(step="invoice", id="inv-7", workflow="invoicing", phase="Succeeded"),
            workflow_pb2.ChildExecution(step="ship", id="ship-7", workflow="shipping", phase="Running"),
        ],
        continued_from="order-7",
        first_run_id="order-7",
        run=2,
    )


def test_queued_signals_keep_their_order_with_data_parsed_and_receipt_times_as_utc_datetimes() -> None:
    execution = Execution.from_proto(child_run())

    assert execution.queued_signals == (
        QueuedSignal(
            name="paid",
            data={"amount": 12},
            sender="alice",
            received_at=datetime(2023, 11, 14, 22, 13, 20, 250_000, tzinfo=UTC),
        ),
        QueuedSignal(name="note", data=None, sender="system:serviceaccount:shop:bot", received_at=None),
    )


def test_signal_waits_name_the_step_and_the_signal_and_a_timeout_only_when_there_is_one() -> None:
    execution = Execution.from_proto(child_run())

    assert execution.signal_waits == (
        SignalWait(step="await_shipping", name="shipped", timeout_at=datetime(2023, 11, 14, 23, 13, 20, tzinfo=UTC)),
        SignalWait(step="await_cancel", name="cancel", timeout_at=None),
    )


def test_a_child_knows_its_parent_and_a_parent_lists_its_children_oldest_first() -> None:
    execution = Execution.from_proto(child_run())

    assert (execution.parent_id, execution.parent_step) == ("batch-1", "each_order")
    assert execution.children == (
        ChildExecution(step="invoice", id="inv-7", workflow="invoicing", phase="Succeeded"),
        ChildExecution(step="ship", id="ship-7", workflow="shipping", phase="Running"),
    )


def test_a_later_run_of_a_chain_names_the_run_it_continued_from_and_the_chains_first_run() -> None:
    execution = Execution.from_proto(child_run())

    assert (execution.continued_from, execution.continued_as, execution.first_run_id, execution.run) == (
        "order-7",
        None,
        "order-7",
        2,
    )
    assert not execution.is_terminal


def test_a_run_that_continued_as_new_is_terminal_and_names_its_successor() -> None:
    ended = Execution.from_proto(
        workflow_pb2.ExecutionInfo(
            id="order-7", phase="ContinuedAsNew", continued_as="order-7-run-2", first_run_id="order-7", run=1
        )
    )

    assert ended.is_terminal and "ContinuedAsNew" in TERMINAL_PHASES
    assert (ended.continued_from, ended.continued_as, ended.run) == (None, "order-7-run-2", 1)


def test_an_execution_from_an_engine_before_signals_is_a_top_level_first_run_with_nothing_queued() -> None:
    execution = Execution.from_proto(workflow_pb2.ExecutionInfo(id="ex-1", workflow="orders", phase="Running"))

    assert (execution.queued_signals, execution.signal_waits, execution.children) == ((), (), ())
    assert (execution.parent_id, execution.parent_step, execution.continued_from, execution.continued_as) == (
        None,
        None,
        None,
        None,
    )
    assert (execution.first_run_id, execution.run) == ("ex-1", 1)


def test_signal_sends_the_name_the_data_as_json_and_the_request_id(
    client: Client, workflow_service: FakeWorkflowService
) -> None:
    workflow_service.executions["ex-1"] = workflow_pb2.ExecutionInfo(id="ex-1", phase="Running")

    execution = client.signal("ex-1", "paid", {"amount": 12, "ids": [1, 2]}, request_id="pay-1")
    client.signal("ex-1", "ping")

    (_, first), (_, second) = workflow_service.requests
    assert (first.id, first.name, json.loads(first.data_json), first.request_id) == (
        "ex-1",
        "paid",
        {"amount": 12, "ids": [1, 2]},
        "pay-1",
    )
    assert (second.name, second.data_json, second.request_id) == ("ping", "", "")
    assert [(s.name, s.data, s.sender) for s in execution.queued_signals] == [
        ("paid", {"amount": 12, "ids": [1, 2]}, "fake")
    ]
    assert execution.queued_signals[0].received_at == datetime(2023, 11, 14, 22, 13, 22, tzinfo=UTC)


def test_signalling_an_execution_that_does_not_exist_raises_not_found(client: Client) -> None:
    with pytest.raises(NotFoundError, match="'nope' not found"):
        client.signal("nope", "paid")


def test_signal_with_start_sends_the_workflow_input_signal_and_data_under_the_given_id(
    client: Client, workflow_service: FakeWorkflowService
) -> None:
    execution = client.signal_with_start(
        "orders", execution_id="order-9", input={"id": 9}, signal="paid", data=[12], request_id="r-9"
    )
    client.signal_with_start("orders", execution_id="order-10", signal="paid")

    (_, first), (_, second) = workflow_service.requests
    assert (first.workflow, first.execution_id, json.loads(first.input_json)) == ("orders", "order-9", {"id": 9})
    assert (first.name, json.loads(first.data_json), first.request_id) == ("paid", [12], "r-9")
    assert (second.input_json, second.data_json, second.request_id) == ("", "", "")
    assert (execution.id, execution.input, [s.name for s in execution.queued_signals]) == (
        "order-9",
        {"id": 9},
        ["paid"],
    )


async def test_the_async_client_signals_and_signals_with_start_the_same_way(
    workflow_service: FakeWorkflowService,
) -> None:
    workflow_service.executions["ex-1"] = workflow_pb2.ExecutionInfo(id="ex-1", phase="Running")

    async with AsyncClient(workflow_service.address) as client:
        signalled = await client.signal("ex-1", "paid", {"amount": 3}, request_id="a-1")
        started = await client.signal_with_start("orders", execution_id="order-11", signal="paid", data=True)
        with pytest.raises(NotFoundError):
            await client.signal("missing", "paid")

    assert [(s.name, s.data) for s in signalled.queued_signals] == [("paid", {"amount": 3})]
    assert [(s.name, s.data) for s in started.queued_signals] == [("paid", True)]
    _, request = workflow_service.requests[0]
    assert request.request_id == "a-1"


def test_wait_returns_a_run_that_continued_as_new_unless_told_to_follow_the_chain(
    client: Client, workflow_service: FakeWorkflowService
) -> None:
    continued = workflow_pb2.ExecutionInfo(id="order-7", phase="ContinuedAsNew", continued_as="order-7-run-2")
    last = workflow_pb2.ExecutionInfo(id="order-7-run-2", phase="Succeeded", first_run_id="order-7", run=2)
    workflow_service.wait_replies = [continued, continued, last]

    ended_run = client.wait("order-7")
    chain_end = client.wait("order-7", follow_runs=True)

    assert (ended_run.phase, ended_run.continued_as) == ("ContinuedAsNew", "order-7-run-2")
    assert (chain_end.id, chain_end.phase, chain_end.run) == ("order-7-run-2", "Succeeded", 2)
    waits = [request for method, request in workflow_service.requests if method == "WaitExecution"]
    assert [(request.id, request.follow_runs) for request in waits] == [
        ("order-7", False),
        ("order-7", True),
        ("order-7", True),
    ]


async def test_get_asks_for_the_latest_run_of_a_chain_only_when_told(workflow_service: FakeWorkflowService) -> None:
    workflow_service.executions["order-7"] = workflow_pb2.ExecutionInfo(id="order-7", phase="ContinuedAsNew")

    with Client(workflow_service.address) as client:
        client.get("order-7")
        client.get("order-7", latest_run=True)
    async with AsyncClient(workflow_service.address) as aio:
        await aio.get("order-7", latest_run=True)
        await aio.wait("order-7", follow_runs=False)

    gets = [request.latest_run for method, request in workflow_service.requests if method == "GetExecution"]
    assert gets == [False, True, True]
