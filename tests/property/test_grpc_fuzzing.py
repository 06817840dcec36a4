"""Malformed, wrong-typed and oversized gRPC requests get the right status, and nobody else notices.

A real EngineServer runs in this process on SQLite. Every test fuzzes it while a background
client keeps running executions through it, and after every example a probe client runs one
more execution to the end; the last test checks that every execution's history is still whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from cerebelum.v1 import schedule_pb2, worker_pb2, workflow_pb2

from .grpc_server import (
    CALL_TIMEOUT_S,
    MAX_MESSAGE_BYTES,
    MAX_PAYLOAD_BYTES,
    Background,
    Client,
    ServerThread,
    channel,
    check_history,
)
from .strategies import invalid_specs, valid_specs

FUZZ = settings(
    max_examples=max(10, settings().max_examples // 3),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
# What a server may answer to a bad request; never INTERNAL, UNKNOWN, or no answer at all.
REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
}
SERVICES = [
    worker_pb2.DESCRIPTOR.services_by_name["WorkerService"],
    workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"],
    schedule_pb2.DESCRIPTOR.services_by_name["ScheduleService"],
]
METHODS: list[tuple[str, Any]] = [
    (f"/{service.full_name}/{method.name}", message_factory.GetMessageClass(method.input_type))
    for service in SERVICES
    for method in service.methods
]
TOKEN = "fuzz-exec/a/1/0/1"  # well formed, of no execution


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    server = ServerThread(tmp_path_factory.mktemp("grpc-fuzz") / "engine.db")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def conn(engine: ServerThread) -> Iterator[grpc.Channel]:
    opened = channel(engine.address)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def probe(conn: grpc.Channel) -> Client:
    client = Client(conn)
    client.apply()
    return client


@pytest.fixture
def others_served(engine: ServerThread, probe: Client) -> Iterator[Client]:
    """A client keeps running executions on a thread for the whole test; it must never fail."""
    with Background(engine.address).running():
        yield probe


def raw(conn: grpc.Channel, method: str) -> Any:
    return conn.unary_unary(method, request_serializer=None, response_deserializer=None)


def call(conn: grpc.Channel, method: str, request: bytes | Message) -> tuple[grpc.StatusCode, str]:
    """(status, details) of one unary call with raw bytes or a message."""
    payload = request if isinstance(request, bytes) else request.SerializeToString()
    try:
        raw(conn, method)(payload, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def answered(code: grpc.StatusCode, details: str, method: str) -> None:
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and method.endswith("WaitExecution"):
        return  # a long poll on an execution that exists and runs (one a fuzzed start made): by design
    assert code == grpc.StatusCode.OK or code in REFUSALS, f"{method} answered {code.name}: {details}"


# -- strategies -------------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
STRINGS = st.one_of(
    TEXT,
    st.sampled_from(
        ["", "fuzz", "fuzz-exec", TOKEN, "fuzz-exec/a/x/0/1", "/", "a" * 300, "{}", "null", "[1,", '{"a":NaN}']
    ),
    st.integers(1, 200_000).map(lambda n: "x" * n),
    st.recursive(st.integers(), lambda c: st.lists(c, max_size=3) | st.dictionaries(TEXT, c, max_size=3)).map(
        json.dumps
    ),
)
INT_RANGES = {
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
}


def scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_STRING:
        return STRINGS
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return st.sampled_from([v.number for v in field.enum_type.values])
    low, high = INT_RANGES[field.type]
    return st.one_of(st.integers(low, high), st.sampled_from([low, high, 0, 1]))


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0) -> Message:
    """Any message of this type: each field maybe set, one member per oneof, edge values."""
    message = message_factory.GetMessageClass(descriptor)()
    chosen = {o.name: draw(st.sampled_from([None, *[f.name for f in o.fields]])) for o in descriptor.oneofs}
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and chosen[oneof.name] != field.name:
            continue
        if oneof is None and not draw(st.booleans()):
            continue
        repeated = field.is_repeated
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:  # map<K, V> (labels): keys and values of their types
            key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
            pairs = draw(
                st.dictionaries(scalar(key), scalar(value) if value.message_type is None else st.nothing(), max_size=3)
            )
            getattr(message, field.name).update(pairs)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth > 2:
                continue
            assert field.message_type is not None
            values = draw(
                st.lists(messages(field.message_type, depth + 1), min_size=1, max_size=1 if not repeated else 3)
            )
            if repeated:
                getattr(message, field.name).extend(values)
            else:
                getattr(message, field.name).CopyFrom(values[0])
        elif repeated:
            getattr(message, field.name).extend(draw(st.lists(scalar(field), max_size=3)))
        else:
            setattr(message, field.name, draw(scalar(field)))
    return message


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


@st.composite
def wrong_wire_types(draw: st.DrawFn) -> tuple[str, bytes]:
    """A request whose fields arrive with another wire type than their declared one."""
    method, request_class = draw(st.sampled_from(METHODS))
    body = b""
    numbers = st.sampled_from([f.number for f in request_class.DESCRIPTOR.fields] or [1]) | st.integers(1, 40)
    for number in draw(st.lists(numbers, min_size=1, max_size=4)):
        wire = draw(st.sampled_from([0, 1, 2, 5]))
        value = {
            0: varint(draw(st.integers(0, 2**64 - 1))),
            1: draw(st.binary(min_size=8, max_size=8)),
            2: (lambda payload: varint(len(payload)) + payload)(draw(st.binary(max_size=20))),
            5: draw(st.binary(min_size=4, max_size=4)),
        }[wire]
        body += tag(number, wire) + value
    return method, body


# -- the tests --------------------------------------------------------------------------------


@FUZZ
@given(target=st.sampled_from(METHODS), body=st.binary(max_size=300))
@example(target=METHODS[2], body=b"\xff\xff\xff\xff garbage")
def test_undecodable_bytes_get_invalid_argument_naming_the_message_type(
    conn: grpc.Channel, others_served: Client, target: tuple[str, Any], body: bytes
) -> None:
    method, request_class = target
    assume(b"probe" not in body and b"background" not in body)
    try:
        request_class.FromString(body)
        decodable = True
    except DecodeError:
        decodable = False
    code, details = call(conn, method, body)
    if decodable:
        answered(code, details, method)
    else:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{method}: {code.name} {details}"
        assert request_class.DESCRIPTOR.full_name in details
    others_served.run_one_execution()


@FUZZ
@given(wrong_wire_types())
def test_a_field_sent_with_another_wire_type_is_answered_with_a_status(
    conn: grpc.Channel, others_served: Client, request: tuple[str, bytes]
) -> None:
    method, body = request
    answered(*call(conn, method, body), method)
    others_served.run_one_execution()


@FUZZ
@given(target=st.sampled_from(METHODS), data=st.data())
def test_any_well_formed_request_is_answered_with_a_status_and_never_an_internal_error(
    conn: grpc.Channel, others_served: Client, target: tuple[str, Any], data: st.DataObject
) -> None:
    method, request_class = target
    request = data.draw(messages(request_class.DESCRIPTOR), label="request")
    serialized = request.SerializeToString()
    assume(b"probe" not in serialized and b"background" not in serialized)
    answered(*call(conn, method, serialized), method)
    others_served.run_one_execution()


@FUZZ
@given(field=st.sampled_from([1, 2]), text=st.binary(min_size=1, max_size=20))
@example(field=1, text=b"\xff\xfe")
@example(field=2, text=b"\xed\xa0\x80")  # a UTF-8 encoded lone surrogate
def test_a_string_field_that_is_not_utf8_gets_invalid_argument(
    conn: grpc.Channel, others_served: Client, field: int, text: bytes
) -> None:
    try:
        text.decode()
    except UnicodeDecodeError:
        pass
    else:
        assume(False)
    body = tag(field, 2) + varint(len(text)) + text
    code, details = call(conn, "/cerebelum.v1.WorkerService/CompleteTask", body)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{code.name}: {details}"
    others_served.run_one_execution()


def not_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return True
    return False


@FUZZ
@given(
    text=st.one_of(TEXT, st.sampled_from(["{", "[1,]", "{'a': 1}", "tru", '"open', "01", "{} {}"])).filter(not_json),
    outcome=st.sampled_from(["success", "sleep", "approval"]),
)
def test_a_step_output_that_is_not_json_gets_invalid_argument_naming_the_field(
    conn: grpc.Channel, others_served: Client, text: str, outcome: str
) -> None:
    assume(text != "")
    request = worker_pb2.CompleteTaskRequest(task_token=TOKEN, worker_id="w")
    if outcome == "success":
        request.success.output_json = text
    elif outcome == "sleep":
        request.sleep.output_json = text
    else:
        request.approval.data_json = text
    code, details = call(conn, "/cerebelum.v1.WorkerService/CompleteTask", request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{code.name}: {details}"
    assert "step 'a'" in details and "not valid JSON" in details
    others_served.run_one_execution()


def oversized_requests(size: int) -> list[tuple[str, Message, str]]:
    """(method, request, the payload's name in the refusal) with a JSON payload of `size` bytes."""
    blob = json.dumps("x" * (size - 2))
    return [
        (
            "/cerebelum.v1.WorkerService/CompleteTask",
            worker_pb2.CompleteTaskRequest(
                task_token=TOKEN, worker_id="w", success=worker_pb2.Success(output_json=blob)
            ),
            "output of step 'a'",
        ),
        (
            "/cerebelum.v1.WorkerService/CompleteTask",
            worker_pb2.CompleteTaskRequest(task_token=TOKEN, worker_id="w", sleep=worker_pb2.Sleep(output_json=blob)),
            "output of step 'a'",
        ),
        (
            "/cerebelum.v1.WorkerService/CompleteTask",
            worker_pb2.CompleteTaskRequest(
                task_token=TOKEN, worker_id="w", approval=worker_pb2.ApprovalRequest(data_json=blob)
            ),
            "approval data of step 'a'",
        ),
        (
            "/cerebelum.v1.WorkflowService/StartExecution",
            workflow_pb2.StartExecutionRequest(workflow="fuzz", input_json=blob),
            "execution input",
        ),
        (
            "/cerebelum.v1.WorkflowService/ApplyWorkflow",
            workflow_pb2.ApplyWorkflowRequest(name="fuzz", spec_json=blob),
            "workflow spec",
        ),
        (
            "/cerebelum.v1.WorkflowService/Approve",
            workflow_pb2.ApproveRequest(id="fuzz-exec", step="a", approver="alice", payload_json=blob),
            "approval payload",
        ),
    ]


@FUZZ
@given(
    extra=st.integers(1, MAX_PAYLOAD_BYTES),
    index=st.integers(0, len(oversized_requests(10)) - 1),
)
@example(extra=1, index=0)
def test_a_payload_over_the_limit_gets_resource_exhausted_naming_the_payload_and_the_limit(
    conn: grpc.Channel, others_served: Client, extra: int, index: int
) -> None:
    method, request, what = oversized_requests(MAX_PAYLOAD_BYTES + extra)[index]
    code, details = call(conn, method, request)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{method}: {code.name} {details}"
    assert what in details and "over the 64.0 KiB payload limit" in details
    others_served.run_one_execution()


def test_heartbeat_progress_over_its_limit_gets_resource_exhausted(conn: grpc.Channel, others_served: Client) -> None:
    request = worker_pb2.HeartbeatRequest(task_token=TOKEN, worker_id="w", progress_json=json.dumps("x" * 70_000))
    code, details = call(conn, "/cerebelum.v1.WorkerService/Heartbeat", request)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "heartbeat progress" in details
    others_served.run_one_execution()


@pytest.mark.parametrize("method", [m for m, _ in METHODS])
def test_a_message_over_the_grpc_limit_gets_resource_exhausted(conn: grpc.Channel, probe: Client, method: str) -> None:
    body = tag(15, 2) + varint(MAX_MESSAGE_BYTES) + b"x" * MAX_MESSAGE_BYTES  # an unknown field, too big
    code, details = call(conn, method, body)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{code.name}: {details}"
    probe.run_one_execution()


@FUZZ
@given(
    token=st.one_of(
        STRINGS,
        st.builds(
            "/".join,
            st.lists(
                st.sampled_from(["fuzz-exec", "a", "1", "0", "-1", "x", "", "99999999999999999999", "../.."]),
                max_size=7,
            ),
        ),
    ),
    rpc=st.sampled_from(["CompleteTask", "Heartbeat"]),
)
@example(token="", rpc="CompleteTask")
@example(token="fuzz-exec/a/x/0/1", rpc="CompleteTask")
@example(token="no-slashes", rpc="Heartbeat")
def test_a_malformed_task_token_gets_invalid_argument_not_found_or_a_stale_reply(
    conn: grpc.Channel, others_served: Client, token: str, rpc: str
) -> None:
    assume("probe" not in token and "background" not in token)
    if rpc == "CompleteTask":
        request: Message = worker_pb2.CompleteTaskRequest(
            task_token=token, worker_id="w", success=worker_pb2.Success(output_json="1")
        )
    else:
        request = worker_pb2.HeartbeatRequest(task_token=token, worker_id="w")
    code, details = call(conn, f"/cerebelum.v1.WorkerService/{rpc}", request)
    answered(code, details, rpc)
    if token == "":
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "task_token is required" in details
    others_served.run_one_execution()


def test_a_completion_with_a_live_tokens_shape_but_a_wrong_attempt_is_stale(
    conn: grpc.Channel, probe: Client, others_served: Client
) -> None:
    finished = probe.run_one_execution()
    for token in (f"{finished}/a/1/0/2", f"{finished}/a/7/0/2", f"{finished}/zzz/1/0/2"):
        request = worker_pb2.CompleteTaskRequest(task_token=token, worker_id="w", success=worker_pb2.Success())
        reply = worker_pb2.CompleteTaskResponse.FromString(
            raw(conn, "/cerebelum.v1.WorkerService/CompleteTask")(request.SerializeToString(), timeout=CALL_TIMEOUT_S)
        )
        assert reply.disposition in {worker_pb2.CompleteTaskResponse.STALE, worker_pb2.CompleteTaskResponse.DUPLICATE}
    check_history(probe.workflows, finished)


@FUZZ
@given(
    method=st.one_of(
        st.from_regex(
            r"/cerebelum\.v1\.(WorkerService|WorkflowService|ScheduleService)/[A-Z][A-Za-z]{0,15}", fullmatch=True
        ),
        st.from_regex(r"/[a-z][a-z.]{0,15}\.[A-Z][A-Za-z]{0,10}/[A-Z][A-Za-z]{0,10}", fullmatch=True),
    ),
    body=st.binary(max_size=40),
)
def test_an_unknown_method_gets_unimplemented(
    conn: grpc.Channel, others_served: Client, method: str, body: bytes
) -> None:
    assume(method not in {m for m, _ in METHODS})
    code, _ = call(conn, method, body)
    assert code == grpc.StatusCode.UNIMPLEMENTED
    others_served.run_one_execution()


@FUZZ
@given(invalid_specs())
def test_an_invalid_workflow_applied_over_grpc_is_refused_naming_the_problem(
    conn: grpc.Channel, others_served: Client, broken: Any
) -> None:
    try:
        # NaN and the infinities are not JSON (json.dumps writes them unless told not to).
        spec_json = json.dumps(broken.document, allow_nan=False)
    except (TypeError, ValueError):
        assume(False)  # not expressible as JSON: the in-process tests cover it
    request = workflow_pb2.ApplyWorkflowRequest(name="fuzz-invalid", spec_json=spec_json)
    code, details = call(conn, "/cerebelum.v1.WorkflowService/ApplyWorkflow", request)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        assert "payload limit" in details
    else:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{code.name}: {details}"
        if "\\ud800" in spec_json:  # refused as JSON text first, wherever it is, before the spec is read
            assert "lone UTF-16 surrogate" in details, details
        else:
            for expected in broken.expect:
                assert expected in details, f"{broken.how}: {expected!r} not in {details!r}"
    others_served.run_one_execution()


@FUZZ
@given(spec=valid_specs(with_input=False), number=st.integers(0, 3))
def test_valid_workflows_applied_and_started_by_strangers_do_not_disturb_others(
    conn: grpc.Channel, others_served: Client, spec: dict[str, Any], number: int
) -> None:
    name = f"fuzz-valid-{number}"
    code, details = call(
        conn,
        "/cerebelum.v1.WorkflowService/ApplyWorkflow",
        workflow_pb2.ApplyWorkflowRequest(name=name, spec_json=json.dumps({**spec, "taskQueue": "nobody-polls"})),
    )
    assert code == grpc.StatusCode.OK, details
    start = workflow_pb2.StartExecutionRequest(workflow=name, input_json="{}")
    answered(*call(conn, "/cerebelum.v1.WorkflowService/StartExecution", start), "StartExecution")
    others_served.run_one_execution()


# -- bugs in the API layer, kept failing until fixed there (see the report of issue 6) --------


class AnsweredInternal(Exception):
    """The server answered INTERNAL where it should name the bad payload."""


class AcceptedAsJson(Exception):
    """The server took text that is not JSON as a payload."""


DEEP_JSON = "[" * 5_000 + "]" * 5_000  # 10 KB, well under the payload limit


@pytest.mark.parametrize("where", ["input_json", "spec_json", "payload_json", "output_json"])
def test_a_payload_nested_too_deep_for_the_parser_gets_invalid_argument(
    conn: grpc.Channel, probe: Client, where: str
) -> None:
    method, request = {
        "input_json": ("WorkflowService/StartExecution", workflow_pb2.StartExecutionRequest(workflow="fuzz")),
        "spec_json": ("WorkflowService/ApplyWorkflow", workflow_pb2.ApplyWorkflowRequest(name="fuzz-deep")),
        "payload_json": (
            "WorkflowService/Approve",
            workflow_pb2.ApproveRequest(id="fuzz-exec", step="a", approver="alice"),
        ),
        "output_json": ("WorkerService/CompleteTask", worker_pb2.CompleteTaskRequest(task_token=TOKEN, worker_id="w")),
    }[where]
    if where == "output_json":
        assert isinstance(request, worker_pb2.CompleteTaskRequest)
        request.success.output_json = DEEP_JSON
    else:
        setattr(request, where, DEEP_JSON)
    code, details = call(conn, f"/cerebelum.v1.{method}", request)
    probe.run_one_execution()
    if code == grpc.StatusCode.INTERNAL:
        raise AnsweredInternal(details)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{code.name}: {details}"


@pytest.fixture(scope="module")
def json_checker(conn: grpc.Channel) -> Client:
    client = Client(conn, name="json-check", queue="json-check-q")
    client.apply()
    return client


@pytest.mark.parametrize("literal", ["NaN", "Infinity", '{"x": -Infinity}', '"\\ud800"', '{"k\\udc00": 1}'])
def test_a_step_output_with_nan_infinity_or_a_lone_surrogate_gets_invalid_argument(
    conn: grpc.Channel, probe: Client, json_checker: Client, literal: str
) -> None:
    execution_id = f"json-check-{abs(hash(literal))}"
    start = workflow_pb2.StartExecutionRequest(workflow="json-check", input_json="{}", execution_id=execution_id)
    json_checker.workflows.StartExecution(start, timeout=CALL_TIMEOUT_S)
    poll = worker_pb2.PollTaskRequest(worker_id="w", task_queue="json-check-q", steps=["a"], wait_ms=2_000)
    task = json_checker.workers.PollTask(poll, timeout=CALL_TIMEOUT_S).task
    request = worker_pb2.CompleteTaskRequest(
        task_token=task.task_token, worker_id="w", success=worker_pb2.Success(output_json=literal)
    )
    code, details = call(conn, "/cerebelum.v1.WorkerService/CompleteTask", request)
    cancel = workflow_pb2.CancelExecutionRequest(id=execution_id)
    json_checker.workflows.CancelExecution(cancel, timeout=CALL_TIMEOUT_S)
    probe.run_one_execution()
    if code == grpc.StatusCode.OK:
        raise AcceptedAsJson(literal)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{code.name}: {details}"


def test_a_workflow_spec_with_a_lone_surrogate_escape_is_refused_naming_the_problem(
    conn: grpc.Channel, others_served: Client
) -> None:
    spec_json = '{"timeline": ["a"], "taskQueue": "q\\ud800"}'
    request = workflow_pb2.ApplyWorkflowRequest(name="fuzz-surrogate", spec_json=spec_json)
    code, details = call(conn, "/cerebelum.v1.WorkflowService/ApplyWorkflow", request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{code.name}: {details}"
    assert "workflow spec" in details and "lone UTF-16 surrogate" in details, details
    others_served.run_one_execution()


def test_after_all_the_fuzzing_every_history_is_whole(conn: grpc.Channel, probe: Client, engine: ServerThread) -> None:
    probe.run_one_execution()
    workflows = probe.workflows.ListWorkflows(workflow_pb2.ListWorkflowsRequest(), timeout=CALL_TIMEOUT_S).workflows
    checked = 0
    for workflow in workflows:
        request = workflow_pb2.ListExecutionsRequest(workflow=workflow.name, limit=1000)  # the newest 1000
        for info in probe.workflows.ListExecutions(request, timeout=CALL_TIMEOUT_S).executions:
            check_history(probe.workflows, info.id, engine.spec_of(info.id))
            checked += 1
    assert checked >= min(len(probe.finished), 1000)
