"""`cerebelum dev --token` and TLS, with the engine and the workers as real processes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from cerebelum import Client, TlsSettings, UnauthenticatedError, UnavailableError
from cerebelum.v1 import worker_pb2, workflow_pb2
from cerebelum.v1.worker_pb2_grpc import WorkerServiceStub
from cerebelum.v1.workflow_pb2_grpc import WorkflowServiceStub
from tests.support.processes import WorkerPool
from tests.support.security import CREDENTIAL_VARIABLES, GuardedEngine, self_signed_certificate
from tests.support.waiting import wait_until

from .conftest import WORKER_SCRIPT

pytestmark = pytest.mark.slow

TOKEN = "dev-token-for-the-security-tests"
FLOW = {"taskQueue": "test", "timeline": ["a", "b"]}


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


@pytest.fixture
def tokened_engine(tmp_path: Path) -> Iterator[GuardedEngine]:
    engine = GuardedEngine(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        log_path=tmp_path / "engine.log",
        extra_args=("--token", TOKEN),
    )
    engine.start()
    yield engine
    engine.stop()


def test_a_client_without_the_token_is_refused_naming_the_missing_credentials(tokened_engine: GuardedEngine) -> None:
    with Client(tokened_engine.address) as client, pytest.raises(UnauthenticatedError, match="no credentials"):
        client.list_workflows()


def test_a_client_with_a_wrong_token_is_refused(tokened_engine: GuardedEngine) -> None:
    with (
        Client(tokened_engine.address, token="not-the-token-at-all") as client,
        pytest.raises(UnauthenticatedError, match="not valid"),
    ):
        client.list_workflows()


def test_a_worker_without_the_token_takes_no_task_and_one_with_it_finishes_the_execution(
    tokened_engine: GuardedEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    ledger.touch()
    pool = WorkerPool(script=WORKER_SCRIPT, address=tokened_engine.address, ledger=ledger, log_dir=tmp_path)
    try:
        stranger = pool.start()
        with Client(tokened_engine.address, token=TOKEN) as client:
            client.apply_workflow("guarded", FLOW)
            execution = client.start("guarded", {})
            wait_until(
                lambda: "UNAUTHENTICATED" in stranger.log_path.read_text(), within=30, what="the stranger's refusal"
            )
            assert "StepStarted" not in [event.type for event in client.history(execution.id)]
            assert ledger.read_text() == ""

            monkeypatch.setenv("CEREBELUM_TOKEN", TOKEN)
            pool.start()
            final = client.wait(execution.id, timeout=60)
        assert final.phase == "Succeeded", final.error
    finally:
        pool.stop_all()


def test_over_tls_a_worker_that_trusts_the_certificate_finishes_and_a_plaintext_client_is_turned_away(
    certificate: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    engine = GuardedEngine(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        log_path=tmp_path / "engine.log",
        extra_args=("--token", TOKEN, "--tls-cert", str(cert), "--tls-key", str(key)),
    )
    engine.start()
    ledger = tmp_path / "ledger.jsonl"
    ledger.touch()
    pool = WorkerPool(script=WORKER_SCRIPT, address=engine.address, ledger=ledger, log_dir=tmp_path)
    try:
        with Client(engine.address, token=TOKEN, timeout=3) as plaintext, pytest.raises(UnavailableError):
            plaintext.list_workflows()

        monkeypatch.setenv("CEREBELUM_TOKEN", TOKEN)
        monkeypatch.setenv("CEREBELUM_TLS_CA", str(cert))
        pool.start()
        with Client(engine.address, token=TOKEN, tls=TlsSettings(ca_file=str(cert))) as client:
            client.apply_workflow("encrypted", FLOW)
            execution = client.start("encrypted", {})
            final = client.wait(execution.id, timeout=60)
        assert final.phase == "Succeeded", final.error
        assert "TLS" in engine.log_path.read_text()
    finally:
        pool.stop_all()
        engine.stop()


def test_dev_refuses_a_token_too_short_to_be_a_secret(tmp_path: Path) -> None:
    engine = GuardedEngine(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        log_path=tmp_path / "engine.log",
        extra_args=("--token", "abc"),
    )
    engine.launch()
    assert engine.process is not None
    assert engine.process.wait(timeout=30) != 0
    assert "at least 16 characters" in engine.log_path.read_text()


# -- size limits: strings the engine stores, and what a task carries ---------------------------

BIG = 16 * 1024 * 1024
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def open_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardedEngine]:
    """One `cerebelum dev` (default 2 MiB payload limit) shared by the size tests."""
    directory = tmp_path_factory.mktemp("limits")
    engine = GuardedEngine(database_url=f"sqlite:///{directory / 'engine.db'}", log_path=directory / "engine.log")
    engine.start()
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def stubs(open_engine: GuardedEngine) -> Iterator[tuple[WorkerServiceStub, WorkflowServiceStub]]:
    options = [("grpc.max_receive_message_length", BIG), ("grpc.max_send_message_length", BIG)]
    with grpc.insecure_channel(open_engine.address, options=options) as channel:
        # The generated gRPC stubs carry no types.
        yield WorkerServiceStub(channel), WorkflowServiceStub(channel)  # type: ignore[no-untyped-call]


def started(workflows: WorkflowServiceStub, name: str, spec: dict[str, Any]) -> str:
    workflows.ApplyWorkflow(workflow_pb2.ApplyWorkflowRequest(name=name, spec_json=json.dumps(spec)), timeout=30)
    reply: workflow_pb2.ExecutionInfo = workflows.StartExecution(
        workflow_pb2.StartExecutionRequest(workflow=name), timeout=30
    )
    return reply.id


def take(workers: WorkerServiceStub, queue: str, step: str, worker_id: str = "w1") -> worker_pb2.Task:
    request = worker_pb2.PollTaskRequest(worker_id=worker_id, task_queue=queue, steps=[step], wait_ms=10_000)
    task: worker_pb2.Task = workers.PollTask(request, timeout=30).task
    assert task.step == step
    return task


def finish(workers: WorkerServiceStub, task: worker_pb2.Task, output: Any, worker_id: str = "w1") -> int:
    request = worker_pb2.CompleteTaskRequest(
        task_token=task.task_token, worker_id=worker_id, success=worker_pb2.Success(output_json=json.dumps(output))
    )
    reply: worker_pb2.CompleteTaskResponse = workers.CompleteTask(request, timeout=30)
    return reply.disposition


TWO_MIB_TEXT = "x" * (2 * MIB)
OVERSIZED: list[tuple[str, str, Callable[[str, str], tuple[str, Message]]]] = [
    (
        "PollTask: worker_id",
        "256",
        lambda _id, _token: (
            "PollTask",
            worker_pb2.PollTaskRequest(worker_id=TWO_MIB_TEXT, task_queue="sizes", steps=["a"], wait_ms=200),
        ),
    ),
    (
        "CompleteTask: failure.type",
        "256",
        lambda _id, token: (
            "CompleteTask",
            worker_pb2.CompleteTaskRequest(
                task_token=token, worker_id="w1", failure=worker_pb2.Failure(type=TWO_MIB_TEXT, message="m")
            ),
        ),
    ),
    (
        "CompleteTask: approval.kind",
        "256",
        lambda _id, token: (
            "CompleteTask",
            worker_pb2.CompleteTaskRequest(
                task_token=token, worker_id="w1", approval=worker_pb2.ApprovalRequest(kind=TWO_MIB_TEXT)
            ),
        ),
    ),
    (
        "CompleteTask: worker_id",
        "256",
        lambda _id, token: (
            "CompleteTask",
            worker_pb2.CompleteTaskRequest(task_token=token, worker_id=TWO_MIB_TEXT, success=worker_pb2.Success()),
        ),
    ),
    (
        "Approve: approver",
        "512",
        lambda execution, _token: (
            "Approve",
            workflow_pb2.ApproveRequest(id=execution, step="gate", approver=TWO_MIB_TEXT),
        ),
    ),
    (
        "Reject: reason",
        "8192",
        lambda execution, _token: (
            "Reject",
            workflow_pb2.RejectRequest(id=execution, step="gate", approver="alice", reason=TWO_MIB_TEXT),
        ),
    ),
    (
        "CancelExecution: reason",
        "8192",
        lambda execution, _token: (
            "CancelExecution",
            workflow_pb2.CancelExecutionRequest(id=execution, reason=TWO_MIB_TEXT),
        ),
    ),
]


@pytest.mark.parametrize(("field", "limit", "build"), OVERSIZED, ids=[field for field, _, _ in OVERSIZED])
def test_a_two_mib_string_is_refused_naming_the_field_and_its_limit_and_the_execution_stays_readable(
    stubs: tuple[WorkerServiceStub, WorkflowServiceStub],
    field: str,
    limit: str,
    build: Callable[[str, str], tuple[str, Message]],
) -> None:
    workers, workflows = stubs
    # "gate" waits for a person beside "a", so Approve and Reject meet a real pending approval.
    spec = {"taskQueue": "sizes", "timeline": [["a", "gate"]], "steps": {"gate": {"approval": {"timeout": "1h"}}}}
    execution = started(workflows, "sizes", spec)
    task = take(workers, "sizes", "a")
    rpc, request = build(execution, task.task_token)
    service = workers if rpc in ("PollTask", "CompleteTask") else workflows

    with pytest.raises(grpc.RpcError) as refused:
        getattr(service, rpc)(request, timeout=30)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    assert f"{field} is {2 * MIB} characters long, over the limit of {limit}" in (refused.value.details() or "")
    workflows.GetExecution(workflow_pb2.GetExecutionRequest(id=execution), timeout=30)
    history = workflows.GetHistory(workflow_pb2.GetHistoryRequest(id=execution), timeout=30)
    assert max(len(event.data_json) for event in history.events) < 1024
    assert finish(workers, task, "done") == worker_pb2.CompleteTaskResponse.ACCEPTED


def test_the_step_whose_output_would_make_the_next_task_too_big_to_send_fails_at_once_naming_it(
    stubs: tuple[WorkerServiceStub, WorkflowServiceStub],
) -> None:
    """Three outputs under the 2 MiB payload limit would make a 5.7 MB PollTask reply, over the 5 MiB
    message limit: before, its lease expired again and again and the execution failed as LeaseExpired."""
    workers, workflows = stubs
    execution = started(workflows, "carry", {"taskQueue": "carry", "timeline": ["a", "b", "c", "d"]})
    output = "y" * (19 * MIB // 10)
    for step in ("a", "b"):
        assert finish(workers, take(workers, "carry", step), output) == worker_pb2.CompleteTaskResponse.ACCEPTED
    assert finish(workers, take(workers, "carry", "c"), output) == worker_pb2.CompleteTaskResponse.ACCEPTED

    info = workflows.WaitExecution(workflow_pb2.WaitExecutionRequest(id=execution, wait_ms=30_000), timeout=40)
    assert info.phase == "Failed"
    assert "ArgumentsTooLarge" in info.error and "step 'c'" in info.error, info.error
    assert "over the 4.9 MiB limit of what a task carries" in info.error, info.error
    assert "LeaseExpired" not in info.error


def test_an_approval_payload_that_would_make_the_next_task_too_big_is_refused_naming_the_limit(
    stubs: tuple[WorkerServiceStub, WorkflowServiceStub],
) -> None:
    workers, workflows = stubs
    spec = {"taskQueue": "gate", "timeline": ["a", "b", "go", "c"], "steps": {"go": {"approval": {}}}}
    execution = started(workflows, "gate", spec)
    for step in ("a", "b"):
        finish(workers, take(workers, "gate", step), "y" * (19 * MIB // 10))
    approve = workflow_pb2.ApproveRequest(id=execution, step="go", approver="alice")

    approve.payload_json = json.dumps("z" * (19 * MIB // 10))
    with pytest.raises(grpc.RpcError) as refused:
        workflows.Approve(approve, timeout=30)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "over the 4.9 MiB limit of what a task carries" in (refused.value.details() or "")

    approve.payload_json = json.dumps("ok")
    assert workflows.Approve(approve, timeout=30).phase == "Running"
    finish(workers, take(workers, "gate", "c"), "done")


def test_a_history_of_large_results_is_read_in_pages_that_each_fit_the_message_limit(
    stubs: tuple[WorkerServiceStub, WorkflowServiceStub],
) -> None:
    workers, workflows = stubs
    execution = started(workflows, "pages", {"taskQueue": "pages", "timeline": ["a", "b"]})
    for step in ("a", "b"):
        finish(workers, take(workers, "pages", step), "y" * (19 * MIB // 10))  # b's is the output too: 5.7 MB
    events: list[Any] = []
    while True:
        request = workflow_pb2.GetHistoryRequest(id=execution, after_seq=events[-1].seq if events else 0, limit=1000)
        page = workflows.GetHistory(request, timeout=30).events
        if not page:
            break
        events.extend(page)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "ExecutionSucceeded"
    assert sum(len(e.data_json) for e in events) > 5 * MIB
