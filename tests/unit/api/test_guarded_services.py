"""The gRPC services behind a guard: who may poll which queue and namespace, and who approves.

The engine, store (SQLite file) and gRPC server are real and in-process; only the authenticator
is a table of tokens, standing in for the TokenReview the operator makes (tested in tests/kube).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from cerebelum.v1 import schedule_pb2, schedule_pb2_grpc, worker_pb2, worker_pb2_grpc, workflow_pb2, workflow_pb2_grpc
from cerebelum_operator.api import AccessPolicy, Guard, Identity, Unauthenticated
from cerebelum_operator.server import EngineServer, ServerConfig

pytestmark = pytest.mark.timeout(60)

WORKER_A = "system:serviceaccount:team-a:worker"
WORKER_B = "system:serviceaccount:team-b:worker"
ALICE = "alice"
TOKENS = {"token-a": Identity(WORKER_A), "token-b": Identity(WORKER_B), "token-alice": Identity(ALICE)}
FLOW = {"taskQueue": "jobs", "timeline": ["work", "go_live"], "steps": {"go_live": {"approval": {}}}}


class TableAuthenticator:
    async def authenticate(self, token: str) -> Identity:
        if token not in TOKENS:
            raise Unauthenticated("token refused")
        return TOKENS[token]


POLICY = AccessPolicy.from_document(
    {
        "workers": [
            {"subjects": ["system:serviceaccount:*"], "namespaces": ["$self"], "queues": ["jobs"]},
        ],
        "clients": [{"subjects": [ALICE]}],
    }
)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EngineServer]:
    config = ServerConfig(
        address="127.0.0.1:0",
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        guard=Guard(TableAuthenticator(), policy=POLICY),
    )
    engine_server = EngineServer(config)
    await engine_server.start()
    yield engine_server
    await engine_server.stop(0)


@pytest.fixture
async def channel(server: EngineServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as opened:
        yield opened


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def start_in(server: EngineServer, namespace: str, execution_id: str) -> None:
    """As the operator does: the workflow stored under namespace/name, then an execution of it."""
    db = server.engine.db
    await db.run(db.store.put_workflow, f"{namespace}/flow", FLOW, now_ms=server.clock.now_ms())
    await server.engine.start(f"{namespace}/flow", {}, execution_id=execution_id)


async def poll(channel: grpc.aio.Channel, token: str, *, queue: str = "jobs", wait_ms: int = 300) -> worker_pb2.Task:
    stub = worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
    reply: worker_pb2.PollTaskResponse = await stub.PollTask(
        worker_pb2.PollTaskRequest(worker_id=f"w-{token}", task_queue=queue, steps=["work"], wait_ms=wait_ms),
        metadata=bearer(token),
    )
    return reply.task


async def test_a_poll_without_a_token_is_refused_as_unauthenticated(channel: grpc.aio.Channel) -> None:
    stub = worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.PollTask(worker_pb2.PollTaskRequest(worker_id="w", task_queue="jobs", steps=["work"]))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "no credentials" in (refused.value.details() or "")


async def test_a_poll_with_an_unknown_token_is_refused_as_unauthenticated(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await poll(channel, "stolen")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_worker_polling_a_queue_it_is_not_allowed_is_refused_naming_the_queue(
    channel: grpc.aio.Channel,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await poll(channel, "token-a", queue="payroll")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'payroll'" in (refused.value.details() or "")
    assert WORKER_A in (refused.value.details() or "")


async def test_a_worker_takes_only_the_tasks_of_its_own_namespace(
    server: EngineServer, channel: grpc.aio.Channel
) -> None:
    await start_in(server, "team-b", "exec-b")
    await start_in(server, "team-a", "exec-a")

    first = await poll(channel, "token-a")
    nothing_more = await poll(channel, "token-a")
    other = await poll(channel, "token-b")

    assert first.execution_id == "exec-a"
    assert first.workflow == "team-a/flow"
    assert not nothing_more.task_token  # team-b's task is older, yet never offered to team-a
    assert other.execution_id == "exec-b"


async def test_a_waiting_poll_is_not_handed_a_task_of_another_namespace(
    server: EngineServer, channel: grpc.aio.Channel
) -> None:
    import asyncio

    waiting_a = asyncio.create_task(poll(channel, "token-a", wait_ms=1500))
    await asyncio.sleep(0.3)  # the poll is parked in the dispatcher when the task arrives
    await start_in(server, "team-b", "exec-b")
    task = await waiting_a
    assert not task.task_token
    assert (await poll(channel, "token-b")).execution_id == "exec-b"


async def test_a_worker_cannot_complete_a_task_of_a_namespace_it_is_not_allowed(
    server: EngineServer, channel: grpc.aio.Channel
) -> None:
    await start_in(server, "team-b", "exec-b")
    task = await poll(channel, "token-b")
    stub = worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
    request = worker_pb2.CompleteTaskRequest(
        task_token=task.task_token,
        worker_id="w-token-b",  # even claiming the holder's worker id
        success=worker_pb2.Success(output_json='"forged"'),
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CompleteTask(request, metadata=bearer("token-a"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'team-b'" in (refused.value.details() or "")
    state = await server.engine.state_of("exec-b")
    assert state.steps["work"].phase.value == "Running"

    accepted = await stub.CompleteTask(request, metadata=bearer("token-b"))
    assert accepted.disposition == worker_pb2.CompleteTaskResponse.ACCEPTED


async def test_only_the_policy_s_clients_may_call_the_workflow_service(channel: grpc.aio.Channel) -> None:
    stub = workflow_pb2_grpc.WorkflowServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListWorkflows(workflow_pb2.ListWorkflowsRequest(), metadata=bearer("token-a"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "ListWorkflows" in (refused.value.details() or "")
    listed = await stub.ListWorkflows(workflow_pb2.ListWorkflowsRequest(), metadata=bearer("token-alice"))
    assert listed is not None


async def approval_waiting(server: EngineServer, channel: grpc.aio.Channel) -> None:
    await start_in(server, "team-a", "exec-a")
    task = await poll(channel, "token-a")
    stub = worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
    await stub.CompleteTask(
        worker_pb2.CompleteTaskRequest(
            task_token=task.task_token, worker_id="w-token-a", success=worker_pb2.Success(output_json="1")
        ),
        metadata=bearer("token-a"),
    )


async def test_an_approver_cannot_claim_to_be_someone_else(server: EngineServer, channel: grpc.aio.Channel) -> None:
    await approval_waiting(server, channel)
    stub = workflow_pb2_grpc.WorkflowServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Approve(
            workflow_pb2.ApproveRequest(id="exec-a", step="go_live", approver="the-cto"), metadata=bearer("token-alice")
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'the-cto'" in (refused.value.details() or "") and "'alice'" in (refused.value.details() or "")
    assert (await server.engine.state_of("exec-a")).display_phase().value == "WaitingForApproval"


async def test_an_approval_records_the_authenticated_user(server: EngineServer, channel: grpc.aio.Channel) -> None:
    await approval_waiting(server, channel)
    stub = workflow_pb2_grpc.WorkflowServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
    await stub.Approve(workflow_pb2.ApproveRequest(id="exec-a", step="go_live"), metadata=bearer("token-alice"))
    history = await stub.GetHistory(workflow_pb2.GetHistoryRequest(id="exec-a"), metadata=bearer("token-alice"))
    approved = [json.loads(e.data_json) for e in history.events if e.type == "ApprovalGranted"]
    assert approved, [e.type for e in history.events]
    assert approved[0]["approver"] == ALICE


# -- completions judged from the engine's own record, under the execution's lock ----------------

RACE_STEPS = [f"s{index:02d}" for index in range(20)]
RACE_FLOW = {"taskQueue": "jobs", "timeline": RACE_STEPS}
FORGERIES_PER_STEP = 12


async def start_team_b_race(server: EngineServer) -> None:
    """Execution `exec-b` of team-b's race workflow, whose next tokens anyone can predict."""
    db = server.engine.db
    await db.run(db.store.put_workflow, "team-b/race", RACE_FLOW, now_ms=server.clock.now_ms())
    await server.engine.start("team-b/race", {}, execution_id="exec-b")


def completion(token: str, worker_id: str, output: str) -> worker_pb2.CompleteTaskRequest:
    return worker_pb2.CompleteTaskRequest(
        task_token=token, worker_id=worker_id, success=worker_pb2.Success(output_json=json.dumps(output))
    )


async def test_a_completion_of_another_namespace_s_task_not_yet_scheduled_is_refused(
    server: EngineServer, channel: grpc.aio.Channel
) -> None:
    await start_team_b_race(server)
    stub = worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
    ahead = "exec-b/s01/1/0/5"  # what the next task's token will be: nobody knows it yet

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CompleteTask(completion(ahead, "w-token-b", "forged"), metadata=bearer("token-a"))

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'team-b'" in (refused.value.details() or "")


async def test_a_worker_flooding_completions_of_another_namespace_s_next_task_never_gets_one_accepted(
    server: EngineServer, channel: grpc.aio.Channel
) -> None:
    """The race of issue 13: team-b's worker completes a step while team-a's worker, claiming
    team-b's worker id, floods the predictable token of the task that completion schedules."""
    await start_team_b_race(server)
    stub = worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
    attempts, accepted, codes = 0, 0, set()
    for index, step in enumerate(RACE_STEPS):
        poll_request = worker_pb2.PollTaskRequest(
            worker_id="w-token-b", task_queue="jobs", steps=RACE_STEPS, wait_ms=5_000
        )
        task = (await stub.PollTask(poll_request, metadata=bearer("token-b"))).task
        assert task.step == step, f"a forged completion finished step {RACE_STEPS[index - 1]}"
        real = stub.CompleteTask(completion(task.task_token, "w-token-b", step), metadata=bearer("token-b"))
        if index + 1 == len(RACE_STEPS):
            await real
            break
        seq = int(task.task_token.rsplit("/", 1)[1])
        predicted = f"exec-b/{RACE_STEPS[index + 1]}/1/0/{seq + 3}"  # after StepStarted, StepCompleted
        forged = [
            stub.CompleteTask(completion(predicted, "w-token-b", "forged"), metadata=bearer("token-a"))
            for _ in range(FORGERIES_PER_STEP)
        ]
        replies = await asyncio.gather(real, *forged, return_exceptions=True)
        assert not isinstance(replies[0], BaseException), replies[0]
        for reply in replies[1:]:
            attempts += 1
            if isinstance(reply, grpc.aio.AioRpcError):
                codes.add(reply.code())
            elif isinstance(reply, BaseException):
                raise reply
            elif reply.disposition == worker_pb2.CompleteTaskResponse.ACCEPTED:
                accepted += 1

    state = await server.engine.state_of("exec-b")
    assert attempts >= 200
    assert accepted == 0
    assert codes <= {grpc.StatusCode.PERMISSION_DENIED}
    assert state.phase.value == "Succeeded"
    assert state.results == {step: step for step in RACE_STEPS}


async def test_a_completion_for_a_task_nobody_leased_is_stale_even_from_its_own_namespace(
    server: EngineServer, channel: grpc.aio.Channel
) -> None:
    await start_in(server, "team-a", "exec-a")
    state = await server.engine.state_of("exec-a")
    queued = state.steps["work"].token
    assert queued is not None
    stub = worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped

    unleased = await stub.CompleteTask(completion(queued, "w-token-a", "unleased"), metadata=bearer("token-a"))

    assert unleased.disposition == worker_pb2.CompleteTaskResponse.STALE
    assert (await server.engine.state_of("exec-a")).steps["work"].phase.value == "Scheduled"
    task = await poll(channel, "token-a")
    other = await stub.CompleteTask(completion(task.task_token, "another-worker", "x"), metadata=bearer("token-a"))
    holder = await stub.CompleteTask(completion(task.task_token, "w-token-a", "real"), metadata=bearer("token-a"))
    assert other.disposition == worker_pb2.CompleteTaskResponse.STALE
    assert holder.disposition == worker_pb2.CompleteTaskResponse.ACCEPTED
    assert (await server.engine.state_of("exec-a")).results["work"] == "real"


async def test_a_heartbeat_for_a_task_of_a_namespace_the_worker_is_not_allowed_is_refused_even_before_it_exists(
    server: EngineServer, channel: grpc.aio.Channel
) -> None:
    await start_team_b_race(server)
    stub = worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
    task = (
        await stub.PollTask(
            worker_pb2.PollTaskRequest(worker_id="w-token-b", task_queue="jobs", steps=RACE_STEPS, wait_ms=2_000),
            metadata=bearer("token-b"),
        )
    ).task

    for token in (task.task_token, "exec-b/s01/1/0/5"):  # leased now, and the next one, not scheduled yet
        beat = worker_pb2.HeartbeatRequest(task_token=token, worker_id="w-token-b")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Heartbeat(beat, metadata=bearer("token-a"))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, token
    own = worker_pb2.HeartbeatRequest(task_token=task.task_token, worker_id="w-token-b")
    assert not (await stub.Heartbeat(own, metadata=bearer("token-b"))).lease_lost


async def test_a_client_without_the_schedules_grant_may_not_create_a_schedule(channel: grpc.aio.Channel) -> None:
    stub = schedule_pb2_grpc.ScheduleServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
    request = schedule_pb2.CreateScheduleRequest(name="nightly", spec_json='{"workflow": "w", "cron": "@daily"}')
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateSchedule(request, metadata=bearer("token-alice"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'schedules: true'" in (refused.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.ListSchedules(schedule_pb2.ListSchedulesRequest())
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED


CODE_FLOW = {"taskQueue": "jobs", "code": {"function": "flow"}}


async def test_only_a_worker_of_the_execution_s_namespace_holding_its_workflow_task_reads_its_history(
    server: EngineServer, channel: grpc.aio.Channel
) -> None:
    db = server.engine.db
    await db.run(db.store.put_workflow, "team-b/code", CODE_FLOW, now_ms=server.clock.now_ms())
    await server.engine.start("team-b/code", {"secret": "payroll"}, execution_id="exec-code")
    stub = worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
    reply = await stub.PollTask(
        worker_pb2.PollTaskRequest(worker_id="w-b", task_queue="jobs", workflows=["flow"], wait_ms=300),
        metadata=bearer("token-b"),
    )
    task = reply.task
    assert task.workflow_task.started_seq > 0
    assert "payroll" in task.workflow_task.history_json

    def read(token: str, worker_id: str) -> worker_pb2.GetWorkflowHistoryRequest:
        return worker_pb2.GetWorkflowHistoryRequest(task_token=task.task_token, worker_id=worker_id, after_seq=0)

    owned = await stub.GetWorkflowHistory(read("token-b", "w-b"), metadata=bearer("token-b"))
    assert "payroll" in owned.history_json
    for token, worker_id in (("token-a", "w-b"), ("token-b", "someone-else")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetWorkflowHistory(read(token, worker_id), metadata=bearer(token))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, (token, worker_id)


async def test_a_continuation_needs_the_right_to_answer_the_code_s_workflow_tasks_not_only_the_step_s(
    server: EngineServer, channel: grpc.aio.Channel
) -> None:
    from cerebelum_operator.engine import commands as cmd

    db = server.engine.db
    spec = {"taskQueue": "jobs", "code": {"function": "flow", "taskQueue": "brains"}}  # workers may poll jobs only
    await db.run(db.store.put_workflow, "team-b/split", spec, now_ms=server.clock.now_ms())
    await server.engine.start("team-b/split", {}, execution_id="exec-split")
    live = (await server.engine.state_of("exec-split")).workflow_task
    assert live is not None  # answered in-process, as a worker allowed on 'brains' would
    await server.engine.handle("exec-split", cmd.TaskStarted(live.token, "w-b"))
    commands = [{"type": "step", "id": 1, "function": "work", "args": {}}]
    await server.engine.handle(
        "exec-split", cmd.TaskCompleted(live.token, cmd.OutcomeWorkflowCommands(commands), worker_id="w-b")
    )
    task = await poll(channel, "token-b")
    assert task.workflow_step == "work#1"
    sticky = (await server.engine.state_of("exec-split")).sticky
    assert sticky is not None
    stub = worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped
    report = worker_pb2.CompleteTaskRequest(
        task_token=task.task_token,
        worker_id="w-token-b",
        success=worker_pb2.Success(output_json="1"),
        workflow_continuation=worker_pb2.WorkflowContinuation(
            after_seq=sticky[1], time_ms=server.clock.now_ms(), commands_json='[{"type": "complete", "output": 1}]'
        ),
    )

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CompleteTask(report, metadata=bearer("token-b"))

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "brains" in (refused.value.details() or "")
    assert (await server.engine.state_of("exec-split")).phase.value == "Running", "nothing was recorded"
    report.ClearField("workflow_continuation")
    accepted = await stub.CompleteTask(report, metadata=bearer("token-b"))
    assert accepted.disposition == worker_pb2.CompleteTaskResponse.ACCEPTED
    assert not accepted.HasField("workflow_task")
