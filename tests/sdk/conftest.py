from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from cerebelum.v1 import workflow_pb2_grpc

from .fakes import FakeWorkerService, FakeWorkflowService, serve_worker_service


@pytest.fixture
async def worker_service() -> AsyncIterator[FakeWorkerService]:
    async with serve_worker_service(FakeWorkerService()) as service:
        yield service


@pytest.fixture
def workflow_service() -> Iterator[FakeWorkflowService]:
    """A fake WorkflowService on a thread-pool server, usable from sync and async clients."""
    service = FakeWorkflowService()
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    workflow_pb2_grpc.add_WorkflowServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    service.address = f"127.0.0.1:{port}"
    try:
        yield service
    finally:
        server.stop(None).wait(5)
