"""Bad input gets a clear error naming the problem, and the engine keeps serving everyone else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from cerebelum import CerebelumError, Client
from cerebelum.v1 import worker_pb2
from tests.support.processes import EngineProcess, WorkerProcess

pytestmark = pytest.mark.slow

INVALID_WORKFLOWS: list[tuple[dict[str, Any], str]] = [
    (
        {"timeline": ["a", "ghost_goto"], "branch": {"a": [{"when": "true", "goto": "nowhere"}]}},
        "unknown step 'nowhere'",
    ),
    ({"timeline": ["a"], "steps": {"b": {}}}, "unknown step 'b'"),
    ({"timeline": ["a", ["b", "a"]]}, "duplicate step name 'a'"),
    ({"timeline": ["a"], "defaults": {"timeout": "5 minutes"}}, "bad duration '5 minutes'"),
    (
        {"timeline": ["a"], "branch": {"a": [{"when": "result.x ==", "goto": "a", "maxIterations": 2}]}},
        "does not compile",
    ),
    ({"timeline": ["a", "b", "c"], "branch": {"a": [{"when": "true", "goto": "c"}]}}, "step 'b' is unreachable"),
    ({"timeline": ["a", "b"], "branch": {"b": [{"when": "result.again", "goto": "a"}]}}, "loop with no bound"),
    (
        {"timeline": ["a", "b"], "branch": {"b": [{"when": "true", "goto": "a", "maxIterations": 10_001}]}},
        "less than or equal to 10000",
    ),
    ({"timeline": [[f"p{n}" for n in range(1001)]]}, "over the limit of 1000 parallel steps"),
]


@pytest.mark.parametrize(("spec", "message"), INVALID_WORKFLOWS)
def test_each_invalid_workflow_is_rejected_with_a_message_naming_the_problem(
    client: Client, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(CerebelumError, match=message) as caught:
        client.apply_workflow("broken", spec)
    assert caught.value.code == "InvalidArgument"


def test_an_oversized_step_output_fails_the_step_clearly_and_others_keep_running(
    engine: EngineProcess, start_worker: Callable[[], WorkerProcess], client: Client
) -> None:
    start_worker()
    client.apply_workflow(
        "bloat", {"taskQueue": "test", "timeline": ["big"], "defaults": {"retry": {"maxAttempts": 1}}}
    )
    client.apply_workflow("fine", {"taskQueue": "test", "timeline": ["a", "b"]})
    bloated = client.start("bloat", {"payload_bytes": 3 * 1024 * 1024})
    healthy = client.start("fine", {})
    assert client.wait(healthy.id, timeout=60).phase == "Succeeded"
    final = client.wait(bloated.id, timeout=60)
    assert final.phase == "Failed"
    assert "payload limit" in (final.error or "")


def test_an_oversized_execution_input_is_refused_with_the_limit_named(client: Client) -> None:
    client.apply_workflow("fine", {"taskQueue": "test", "timeline": ["a"]})
    with pytest.raises(CerebelumError, match=r"over the 2\.0 MiB payload limit") as caught:
        client.start("fine", {"blob": "x" * (3 * 1024 * 1024)})
    assert caught.value.code == "ResourceExhausted"


def test_input_breaking_the_input_schema_is_refused_before_anything_runs(client: Client) -> None:
    client.apply_workflow("typed", {"timeline": ["a"], "input": {"type": "object", "required": ["region"]}})
    with pytest.raises(CerebelumError, match="'region' is a required property"):
        client.start("typed", {"zone": 1})
    assert client.list(workflow="typed") == []


def test_a_malformed_grpc_request_gets_invalid_argument_while_the_engine_serves_others(
    engine: EngineProcess, client: Client
) -> None:
    client.apply_workflow("fine", {"taskQueue": "test", "timeline": ["a"]})
    with grpc.insecure_channel(engine.address) as channel:
        raw = channel.unary_unary(
            "/cerebelum.v1.WorkerService/CompleteTask", request_serializer=None, response_deserializer=None
        )
        with pytest.raises(grpc.RpcError) as undecodable:
            raw(b"\xff\xff\xff\xff garbage", timeout=10)
        assert undecodable.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "CompleteTaskRequest" in (undecodable.value.details() or "")
        complete = channel.unary_unary(
            "/cerebelum.v1.WorkerService/CompleteTask",
            request_serializer=worker_pb2.CompleteTaskRequest.SerializeToString,
            response_deserializer=worker_pb2.CompleteTaskResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as no_outcome:
            complete(worker_pb2.CompleteTaskRequest(task_token="x/a/1/0/1", worker_id="w"), timeout=10)
        assert no_outcome.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "an outcome" in (no_outcome.value.details() or "")
    assert client.start("fine", {}).phase in {"Running", "Pending"}
