"""StartExecution's answer: the execution with its labels, a repeated start's being the first start's.
The engine, store (SQLite file) and gRPC server are real and in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest

from cerebelum.v1 import workflow_pb2, workflow_pb2_grpc
from cerebelum_operator.server import EngineServer

pytestmark = pytest.mark.timeout(60)

FLOW = {"taskQueue": "jobs", "timeline": ["a"]}


@pytest.fixture
async def stub(server: EngineServer) -> AsyncIterator[workflow_pb2_grpc.WorkflowServiceStub]:
    db = server.engine.db
    await db.run(db.store.put_workflow, "w", FLOW, now_ms=server.clock.now_ms())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield workflow_pb2_grpc.WorkflowServiceStub(channel)  # type: ignore[no-untyped-call]  # generated: untyped


class LabelReads:
    """Counts the store's reads of labels."""

    def __init__(self, server: EngineServer) -> None:
        self.count = 0
        store = server.engine.db.store
        read = store.labels_of

        def counted(execution_ids: Sequence[str]) -> Any:
            self.count += 1
            return read(execution_ids)

        store.labels_of = counted  # type: ignore[method-assign]


async def test_a_new_execution_answers_with_the_labels_given_without_reading_them_back(
    server: EngineServer, stub: workflow_pb2_grpc.WorkflowServiceStub
) -> None:
    reads = LabelReads(server)
    started = await stub.StartExecution(
        workflow_pb2.StartExecutionRequest(workflow="w", execution_id="e1", input_json="{}", labels={"team": "a"})
    )
    assert dict(started.labels) == {"team": "a"}
    bare = await stub.StartExecution(
        workflow_pb2.StartExecutionRequest(workflow="w", execution_id="e2", input_json="{}")
    )
    assert dict(bare.labels) == {}
    assert reads.count == 0


async def test_a_repeated_start_answers_with_the_first_start_s_labels(
    server: EngineServer, stub: workflow_pb2_grpc.WorkflowServiceStub
) -> None:
    first = workflow_pb2.StartExecutionRequest(workflow="w", execution_id="e1", input_json="{}", labels={"team": "a"})
    await stub.StartExecution(first)
    again = await stub.StartExecution(
        workflow_pb2.StartExecutionRequest(workflow="w", execution_id="e1", input_json="{}", labels={"team": "b"})
    )
    assert (again.id, dict(again.labels)) == ("e1", {"team": "a"})
