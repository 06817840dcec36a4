"""The TaskQueueService is an operator's switch: closed unless a `clients` rule says `taskQueues: true`.

The policy is read from the same document as docs/operations.md shows; the server, store and
gRPC calls are real and in-process, the authenticator a table of tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from cerebelum.v1 import task_queue_pb2, task_queue_pb2_grpc
from cerebelum_operator.api import AccessPolicy, Guard, Identity, PolicyError, Unauthenticated
from cerebelum_operator.api.auth import PermissionDenied
from cerebelum_operator.server import EngineServer, ServerConfig

pytestmark = pytest.mark.timeout(60)

ADMIN = Identity("root", groups=("cerebelum-admins",))
TOKENS = {"token-admin": ADMIN, "token-client": Identity("alice")}
POLICY = AccessPolicy.from_document(
    {"clients": [{"subjects": ["group:cerebelum-admins"], "taskQueues": True}, {"subjects": ["alice"]}]}
)


class TableAuthenticator:
    async def authenticate(self, token: str) -> Identity:
        if token not in TOKENS:
            raise Unauthenticated("token refused")
        return TOKENS[token]


def test_by_default_nobody_may_pause_a_task_queue_and_dev_mode_allows_it() -> None:
    with pytest.raises(PermissionDenied, match="no 'clients' rule with 'taskQueues: true'"):
        AccessPolicy.kubernetes_default().check_task_queues(ADMIN, "PauseTaskQueue")
    AccessPolicy.allow_all().check_task_queues(Identity("anyone"), "PauseTaskQueue")


def test_a_task_queues_grant_that_is_not_a_boolean_is_refused_naming_the_field() -> None:
    with pytest.raises(PolicyError, match=r"clients\[0\]\.taskQueues: expected true or false"):
        AccessPolicy.from_document({"clients": [{"subjects": ["ops"], "taskQueues": "yes"}]})


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[task_queue_pb2_grpc.TaskQueueServiceStub]:
    config = ServerConfig(
        address="127.0.0.1:0",
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        guard=Guard(TableAuthenticator(), policy=POLICY),
    )
    server = EngineServer(config)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield task_queue_pb2_grpc.TaskQueueServiceStub(channel)  # type: ignore[no-untyped-call]
    finally:
        await server.stop(0)


async def test_a_client_without_the_grant_may_not_pause_and_an_admin_may(
    stub: task_queue_pb2_grpc.TaskQueueServiceStub,
) -> None:
    request = task_queue_pb2.PauseTaskQueueRequest(name="emails", note="outage")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.PauseTaskQueue(request, metadata=(("authorization", "Bearer token-client"),))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    paused = await stub.PauseTaskQueue(request, metadata=(("authorization", "Bearer token-admin"),))
    assert (paused.name, paused.paused, paused.waiting_reason) == (
        "emails",
        True,
        "task queue 'emails' is paused (outage)",
    )


async def test_a_rate_limit_outside_its_bounds_is_refused_as_invalid(
    stub: task_queue_pb2_grpc.TaskQueueServiceStub,
) -> None:
    request = task_queue_pb2.SetTaskQueueRateLimitRequest(
        name="emails", rate_limit=task_queue_pb2.RateLimit(count=0, period_ms=1000)
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.SetTaskQueueRateLimit(request, metadata=(("authorization", "Bearer token-admin"),))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
