"""grpc.health.v1 and server reflection: answered without a token, while every other call needs one.

The grpcurl tests talk to a real `cerebelum dev` with a client that is not ours (built by
hack/tools/build-grpcurl.sh from the Go module proxy); the others run the engine in-process to
watch its health change as it stops, and the gate on a method the exemption does not name.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cerebelum.v1 import workflow_pb2, workflow_pb2_grpc
from cerebelum_operator.api import Guard, StaticTokenAuthenticator
from cerebelum_operator.api.access import HEALTH_METHODS
from cerebelum_operator.server import EngineServer, ServerConfig
from cerebelum_operator.server.gate import AuthenticationGate
from tests.support.processes import ROOT
from tests.support.security import CREDENTIAL_VARIABLES, GuardedEngine

TOKEN = "dev-token-for-the-health-tests"
SERVICES = (
    "cerebelum.v1.WorkerService",
    "cerebelum.v1.WorkflowService",
    "cerebelum.v1.ScheduleService",
    "cerebelum.v1.TaskQueueService",
)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@functools.cache
def _build_grpcurl() -> tuple[Path | None, str]:
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "tools" / "build-grpcurl.sh")], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return None, out.stderr[-2000:]
    return Path(out.stdout.strip().splitlines()[-1]) / "grpcurl", ""


@pytest.fixture
def grpcurl() -> Path:
    """The cached grpcurl; without Go it is skipped here, and fails in CI."""
    binary, error = _build_grpcurl()
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"grpcurl is required in CI and could not be built: {error}")
        pytest.skip(f"grpcurl could not be built (hack/tools/build-grpcurl.sh): {error}")
    return binary


def _engine(tmp_path: Path, *extra: str) -> GuardedEngine:
    return GuardedEngine(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        log_path=tmp_path / "engine.log",
        extra_args=("--token", TOKEN, *extra),
    )


@pytest.fixture
def tokened_engine(tmp_path: Path) -> Iterator[GuardedEngine]:
    engine = _engine(tmp_path)
    engine.start()
    yield engine
    engine.stop()


def run_grpcurl(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "-plaintext", "-max-time", "20", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.slow
def test_grpcurl_lists_the_cerebelum_services_and_health_through_reflection_without_a_token(
    grpcurl: Path, tokened_engine: GuardedEngine
) -> None:
    listed = run_grpcurl(grpcurl, tokened_engine.address, "list")
    assert listed.returncode == 0, listed.stderr
    names = listed.stdout.split()
    assert {*SERVICES, "grpc.health.v1.Health"} <= set(names), names

    described = run_grpcurl(grpcurl, tokened_engine.address, "describe", "cerebelum.v1.WorkflowService")
    assert described.returncode == 0, described.stderr
    assert "rpc StartExecution" in described.stdout


@pytest.mark.slow
def test_grpcurl_hears_serving_from_the_health_check_without_a_token_overall_and_for_each_service(
    grpcurl: Path, tokened_engine: GuardedEngine
) -> None:
    for service in ("", *SERVICES):
        checked = run_grpcurl(
            grpcurl, "-d", json.dumps({"service": service}), tokened_engine.address, "grpc.health.v1.Health/Check"
        )
        assert checked.returncode == 0, (service, checked.stderr)
        assert json.loads(checked.stdout) == {"status": "SERVING"}, service


@pytest.mark.slow
def test_grpcurl_calling_a_cerebelum_method_without_the_token_is_refused_unauthenticated_and_with_it_answered(
    grpcurl: Path, tokened_engine: GuardedEngine
) -> None:
    method = "cerebelum.v1.WorkflowService/ListWorkflows"
    refused = run_grpcurl(grpcurl, tokened_engine.address, method)
    assert refused.returncode != 0
    assert "Code: Unauthenticated" in refused.stderr, refused.stderr
    assert "no credentials" in refused.stderr

    answered = run_grpcurl(grpcurl, "-H", f"authorization: Bearer {TOKEN}", tokened_engine.address, method)
    assert answered.returncode == 0, answered.stderr


@pytest.mark.slow
def test_with_no_reflection_grpcurl_cannot_list_the_services_but_the_health_check_still_answers(
    grpcurl: Path, tmp_path: Path
) -> None:
    engine = _engine(tmp_path, "--no-reflection")
    engine.start()
    try:
        listed = run_grpcurl(grpcurl, engine.address, "list")
        assert listed.returncode != 0
        assert "does not support the reflection API" in listed.stderr, listed.stderr

        with grpc.insecure_channel(engine.address) as channel:
            checked = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=20)
        assert checked.status == SERVING
    finally:
        engine.stop()


@pytest.fixture
async def engine_server(tmp_path: Path) -> AsyncIterator[EngineServer]:
    config = ServerConfig(
        address="127.0.0.1:0",
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        guard=Guard(StaticTokenAuthenticator(TOKEN)),
    )
    server = EngineServer(config)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_a_health_watcher_without_a_token_hears_not_serving_as_soon_as_the_engine_begins_to_stop(
    engine_server: EngineServer,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{engine_server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watchers = [health.Watch(health_pb2.HealthCheckRequest(service=name)) for name in ("", *SERVICES)]
        for watcher in watchers:
            assert (await watcher.read()).status == SERVING

        stopping = asyncio.create_task(engine_server.stop())
        for watcher in watchers:
            assert (await asyncio.wait_for(watcher.read(), timeout=10)).status == NOT_SERVING
        await stopping


async def test_a_cerebelum_method_without_the_token_is_refused_by_the_engine_that_answers_health_without_one(
    engine_server: EngineServer,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{engine_server.port}") as channel:
        checked = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert checked.status == SERVING
        workflows = workflow_pb2_grpc.WorkflowServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await workflows.ListWorkflows(workflow_pb2.ListWorkflowsRequest())
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_health_method_other_than_check_and_watch_still_needs_the_token() -> None:
    """A newer grpc.health.v1 has List (every service's status): the exemption names methods, not services."""

    async def listing(request: bytes, context: Any) -> bytes:
        return b""

    server = grpc.aio.server(
        interceptors=[AuthenticationGate(Guard(StaticTokenAuthenticator(TOKEN)), exempt=HEALTH_METHODS)]
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "grpc.health.v1.Health", {"List": grpc.unary_unary_rpc_method_handler(listing)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(
                "/grpc.health.v1.Health/List", request_serializer=None, response_deserializer=None
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(b"")
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "no credentials" in (refused.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as wrong:
                await call(b"", metadata=[("authorization", "Bearer not-the-token-at-all")])
            assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert await call(b"", metadata=[("authorization", f"Bearer {TOKEN}")]) == b""
    finally:
        await server.stop(None)


@pytest.mark.slow
def test_grpcurl_reads_times_as_rfc_3339_timestamps_beside_the_deprecated_milliseconds(
    grpcurl: Path, tokened_engine: GuardedEngine
) -> None:
    """A client that is not ours sees google.protobuf.Timestamp (RFC 3339 in its JSON), and an old
    client's `*_ms` field still carries the same instant."""
    auth = ("-H", f"authorization: Bearer {TOKEN}", tokened_engine.address)
    spec = {"timeline": ["gate"], "steps": {"gate": {"approval": {"timeout": "1h"}}}}

    def call(method: str, body: dict[str, Any]) -> dict[str, Any]:
        done = run_grpcurl(grpcurl, "-d", json.dumps(body), *auth, f"cerebelum.v1.WorkflowService/{method}")
        assert done.returncode == 0, done.stderr
        reply: dict[str, Any] = json.loads(done.stdout)
        return reply

    workflow = call("ApplyWorkflow", {"name": "stamped", "specJson": json.dumps(spec)})
    call("StartExecution", {"workflow": "stamped", "executionId": "ex-stamped", "inputJson": "{}"})
    execution = call("GetExecution", {"id": "ex-stamped"})

    def epoch_ms(rfc3339: str) -> int:
        from datetime import datetime

        return round(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)

    assert workflow["updated_at"].endswith("Z")
    assert epoch_ms(workflow["updated_at"]) == int(workflow["updated_at_ms"])
    assert epoch_ms(execution["created_at"]) == int(execution["created_at_ms"])
    assert epoch_ms(execution["updated_at"]) == int(execution["updated_at_ms"])
    [approval] = execution["pending_approvals"]
    assert epoch_ms(approval["timeout_at"]) == int(approval["timeout_at_ms"])
    assert epoch_ms(approval["timeout_at"]) - epoch_ms(execution["created_at"]) >= 3_600_000 - 5_000
    assert "wake_at" not in execution, "an execution that is not sleeping has no wake time"

    history = call("GetHistory", {"id": "ex-stamped"})
    for event in history["events"]:
        assert epoch_ms(event["at"]) == int(event["at_ms"]), event
