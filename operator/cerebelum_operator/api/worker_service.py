"""gRPC WorkerService: long-poll, heartbeat and completion, on top of the dispatcher."""

from __future__ import annotations

from cerebelum.v1 import worker_pb2 as pb
from cerebelum.v1 import worker_pb2_grpc as pb_grpc

from ..engine import ExecutionState, Reply
from ..engine import commands as cmd
from ..engine.ids import TaskToken
from ..model import WorkflowDefinition
from ..model.limits import MAX_MESSAGE
from ..runtime import Dispatcher, EngineService, namespace_of
from ..runtime.engine_service import Authorize
from .auth import Identity, PermissionDenied
from .errors import Context, InvalidRequest, grpc_errors
from .guard import Guard
from .payloads import dump_json, parse_json
from .times import timestamp

__all__ = ["WorkerServicer"]

_DISPOSITION = {
    Reply.ACCEPTED: pb.CompleteTaskResponse.ACCEPTED,
    Reply.DUPLICATE: pb.CompleteTaskResponse.DUPLICATE,
    Reply.STALE: pb.CompleteTaskResponse.STALE,
}


def _require(value: str, field: str, rpc: str) -> str:
    if not value:
        raise InvalidRequest(f"{rpc}: {field} is required")
    return value


def _task_of(token: str, rpc: str) -> tuple[str, str]:
    """(execution id, step) named by a task token."""
    try:
        parsed = TaskToken.parse(token)
    except ValueError as exc:
        raise InvalidRequest(f"{rpc}: malformed task_token: {exc}") from None
    return parsed.execution_id, parsed.step


class WorkerServicer(pb_grpc.WorkerServiceServicer):
    def __init__(
        self, engine: EngineService, dispatcher: Dispatcher, *, max_payload_bytes: int, guard: Guard | None = None
    ) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.max_payload_bytes = max_payload_bytes
        self.guard = guard or Guard()

    def _task_access(self, identity: Identity, token: str, step: str) -> Authorize | None:
        """A check that the caller could have polled this task: its queue and namespace allowed.

        Judged from the engine's record (the execution's workflow key, the step's queue in its
        definition), never from the dispatcher's, which does not know a task before it is
        scheduled: so a token guessed ahead of time is judged like any other.
        """
        if not self.guard.enabled:
            return None
        policy = self.guard.policy

        def authorize(definition: WorkflowDefinition, state: ExecutionState) -> None:
            config = definition.steps.get(step)
            if config is None or not config.has_task:
                raise PermissionDenied(f"task {token!r} is not a task of execution {state.execution_id!r}")
            policy.check_worker_task(identity, config.task_queue, namespace_of(state.workflow))

        return authorize

    @grpc_errors
    async def PollTask(self, request: pb.PollTaskRequest, context: Context) -> pb.PollTaskResponse:
        _require(request.worker_id, "worker_id", "PollTask")
        _require(request.task_queue, "task_queue", "PollTask")
        if not request.steps:
            raise InvalidRequest("PollTask: steps is empty; register at least one step")
        identity = await self.guard.identify(context)
        granted = await self.dispatcher.poll(
            worker_id=request.worker_id,
            task_queue=request.task_queue,
            steps=request.steps,
            wait_ms=request.wait_ms,
            namespaces=self.guard.policy.worker_namespaces(identity, request.task_queue),
        )
        if granted is None:
            return pb.PollTaskResponse()
        # `granted.step` is the function to run; the workflow's step is the token's.
        parsed = TaskToken.parse(granted.token)
        workflow_step = parsed.step
        # Unique per run of the step (and per item of a forEach step), the same across its retries.
        key = f"{granted.execution_id}/{workflow_step}/{granted.run}"
        if parsed.item is not None:
            key += f"/{parsed.item}"
        return pb.PollTaskResponse(
            task=pb.Task(
                task_token=granted.token,
                execution_id=granted.execution_id,
                workflow=granted.workflow,
                step=granted.step,
                attempt=granted.attempt,
                workflow_step=workflow_step,
                idempotency_key=key,  # docs/reliability.md
                run=granted.run,
                arguments_json=dump_json(granted.arguments),
                attempt_deadline_ms=granted.attempt_deadline_ms,
                attempt_deadline=timestamp(granted.attempt_deadline_ms),
                lease_ms=granted.lease_ms,
                heartbeat_required=granted.heartbeat_required,
                poll=granted.poll,
                last_progress_json=dump_json(granted.last_progress),
            )
        )

    @grpc_errors
    async def Heartbeat(self, request: pb.HeartbeatRequest, context: Context) -> pb.HeartbeatResponse:
        _require(request.task_token, "task_token", "Heartbeat")
        _require(request.worker_id, "worker_id", "Heartbeat")
        identity = await self.guard.identify(context)
        if self.guard.enabled:
            execution_id, step = _task_of(request.task_token, "Heartbeat")
            authorize = self._task_access(identity, request.task_token, step)
            assert authorize is not None
            await self.engine.authorize(execution_id, authorize)
        progress = parse_json(request.progress_json, what="heartbeat progress", limit=64 * 1024)
        result = await self.dispatcher.heartbeat(
            token=request.task_token, worker_id=request.worker_id, progress=progress
        )
        return pb.HeartbeatResponse(
            cancel_requested=result.cancel_requested,
            lease_lost=result.lease_lost,
            lease_expires_at_ms=result.lease_expires_at_ms,
            lease_expires_at=timestamp(result.lease_expires_at_ms),
        )

    @grpc_errors
    async def CompleteTask(self, request: pb.CompleteTaskRequest, context: Context) -> pb.CompleteTaskResponse:
        token = _require(request.task_token, "task_token", "CompleteTask")
        worker_id = _require(request.worker_id, "worker_id", "CompleteTask")
        identity = await self.guard.identify(context)
        execution_id, step = _task_of(token, "CompleteTask")
        outcome = self._outcome(request, step)
        # Access and lease holder are both judged under the execution's lock, from its own record:
        # the holder by `decide` (the attempt's StepStarted), the namespace and queue here.
        decision = await self.engine.handle(
            execution_id,
            # A failed attempt's last progress is kept for the next attempt (Task.last_progress_json).
            cmd.TaskCompleted(token, outcome, worker_id=worker_id, progress=self.dispatcher.progress_of(token)),
            authorize=self._task_access(identity, token, step),
        )
        return pb.CompleteTaskResponse(disposition=_DISPOSITION[decision.reply])

    def _outcome(self, request: pb.CompleteTaskRequest, step: str) -> cmd.Outcome:
        limit = self.max_payload_bytes
        which = request.WhichOneof("outcome")
        match which:
            case "success":
                output = parse_json(request.success.output_json, what=f"output of step {step!r}", limit=limit)
                return cmd.OutcomeSuccess(output)
            case "failure":
                failure = request.failure
                return cmd.OutcomeFailure(
                    failure.type or "Error",
                    failure.message[:MAX_MESSAGE],
                    retryable=not failure.non_retryable,
                    stacktrace=failure.stacktrace,  # cut to its limit by `decide`, as it records it
                )
            case "retry_after":
                return cmd.OutcomeRetryAfter(request.retry_after.delay_ms)
            case "sleep":
                output = parse_json(request.sleep.output_json, what=f"output of step {step!r}", limit=limit)
                return cmd.OutcomeSleep(request.sleep.duration_ms, output)
            case "approval":
                approval = request.approval
                data = parse_json(approval.data_json, what=f"approval data of step {step!r}", limit=limit)
                return cmd.OutcomeApproval(approval.kind or "approval", approval.timeout_ms or None, data)
            case "cancelled":
                return cmd.OutcomeCancelled(request.cancelled.message[:MAX_MESSAGE])
        raise InvalidRequest(
            "CompleteTask: an outcome (success, failure, retry_after, sleep, approval, cancelled) is required"
        )
