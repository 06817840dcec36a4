"""gRPC WorkerService: long-poll, heartbeat and completion, on top of the dispatcher."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Final

from cerebelum.v1 import worker_pb2 as pb
from cerebelum.v1 import worker_pb2_grpc as pb_grpc

from ..engine import ExecutionState, Reply
from ..engine import commands as cmd
from ..engine.ids import WORKFLOW_TASK_PREFIX, WORKFLOW_TASK_STEP, TaskToken
from ..model import WorkflowDefinition
from ..model.limits import MAX_MESSAGE
from ..model.limits import message_limit as grpc_message_limit
from ..runtime import Dispatcher, EngineService, namespace_of
from ..runtime.engine_service import Authorize
from ..runtime.task_lifecycle import GrantedTask, Waiter
from .auth import Identity, PermissionDenied
from .errors import Context, InvalidRequest, grpc_errors, status_of
from .guard import Guard
from .limits import MAX_REPORTS_PER_CALL, check_request
from .payloads import dump_json, parse_json
from .stream_steps import StreamSteps, remember_stream_steps, stream_steps_of
from .times import timestamp
from .workflow_history import HISTORY_PAGE_EVENTS, history_page, history_page_to

__all__ = ["WorkerServicer"]

_REPLY_MARGIN: Final = 64 * 1024  # bytes of a CompleteTasks reply kept for framing and the errors' text

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


def _step_task(granted: GrantedTask, parsed: TaskToken) -> pb.Task:
    """A step's task as a worker receives it; ``parsed``: its token (the workflow's step is the token's,
    ``granted.step`` the function to run)."""
    workflow_step = parsed.step
    # Unique per run of the step (and per item of a forEach step), the same across its retries.
    key = f"{granted.execution_id}/{workflow_step}/{granted.run}"
    if parsed.item is not None:
        key += f"/{parsed.item}"
    return pb.Task(
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


class WorkerServicer(pb_grpc.WorkerServiceServicer):
    def __init__(
        self, engine: EngineService, dispatcher: Dispatcher, *, max_payload_bytes: int, guard: Guard | None = None
    ) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.max_payload_bytes = max_payload_bytes
        self.guard = guard or Guard()

    def _task_access(self, identity: Identity, token: str, step: str, *, continues: bool = False) -> Authorize | None:
        """A check that the caller could have polled this task: its queue and namespace allowed.

        Judged from the engine's record (the execution's workflow key, the step's queue in its
        definition), never from the dispatcher's, which does not know a task before it is
        scheduled: so a token guessed ahead of time is judged like any other.
        """
        if not self.guard.enabled:
            return None
        policy = self.guard.policy

        def authorize(definition: WorkflowDefinition, state: ExecutionState) -> None:
            if step == WORKFLOW_TASK_STEP and definition.code is not None:
                policy.check_worker_task(identity, definition.code.task_queue, namespace_of(state.workflow))
                return
            config = definition.steps.get(step) or state.code_steps.get(step)
            if config is None or not config.has_task:
                raise PermissionDenied(f"task {token!r} is not a task of execution {state.execution_id!r}")
            policy.check_worker_task(identity, config.task_queue, namespace_of(state.workflow))
            if continues and definition.code is not None:  # it also answers a workflow task
                policy.check_worker_task(identity, definition.code.task_queue, namespace_of(state.workflow))

        return authorize

    @grpc_errors
    async def PollTask(self, request: pb.PollTaskRequest, context: Context) -> pb.PollTaskResponse:
        _require(request.worker_id, "worker_id", "PollTask")
        _require(request.task_queue, "task_queue", "PollTask")
        if not request.steps and not request.workflows:
            raise InvalidRequest("PollTask: steps and workflows are empty; register at least one of either")
        steps = frozenset(request.steps)  # read once: each read of a repeated field makes its strings anew
        if steps:
            remember_stream_steps(context, request.task_queue, steps)
        if request.workflows:
            steps |= {WORKFLOW_TASK_PREFIX + name for name in request.workflows}
        identity = await self.guard.identify(context)
        granted = await self.dispatcher.poll(
            worker_id=request.worker_id,
            task_queue=request.task_queue,
            steps=steps,
            wait_ms=request.wait_ms,
            namespaces=self.guard.policy.worker_namespaces(identity, request.task_queue),
        )
        if granted is None:
            return pb.PollTaskResponse()
        # `granted.step` is the function to run; the workflow's step is the token's.
        parsed = TaskToken.parse(granted.token)
        if parsed.step == WORKFLOW_TASK_STEP:
            return pb.PollTaskResponse(task=await self._workflow_task(granted, request.worker_id))
        return pb.PollTaskResponse(task=_step_task(granted, parsed))

    async def _workflow_task(self, granted: GrantedTask, worker_id: str) -> pb.Task:
        """A workflow task with the history its code must see: after what this worker saw last, when
        it completed the execution's last workflow task; otherwise the whole history."""
        state = await self.engine.state_of(granted.execution_id)
        live = state.workflow_task
        started_seq = live.started_seq if live is not None and live.token == granted.token else state.last_seq
        sticky = state.sticky
        after = sticky[1] if sticky is not None and sticky[0] == worker_id else 0
        events = self.engine.recent_events(granted.execution_id, after_seq=after, until_seq=started_seq)
        if events is None:  # not in memory (a whole history, or an execution read back from the store)
            events = await self.engine.load_history(
                granted.execution_id, after_seq=after, limit=min(HISTORY_PAGE_EVENTS, started_seq - after)
            )
        return pb.Task(
            task_token=granted.token,
            execution_id=granted.execution_id,
            workflow=granted.workflow,
            step=granted.step,
            workflow_step=WORKFLOW_TASK_STEP,
            attempt=granted.attempt,
            idempotency_key=f"{granted.execution_id}/{WORKFLOW_TASK_STEP}/{granted.attempt}",
            run=1,
            arguments_json="{}",
            attempt_deadline_ms=granted.attempt_deadline_ms,
            attempt_deadline=timestamp(granted.attempt_deadline_ms),
            lease_ms=granted.lease_ms,
            workflow_task=pb.WorkflowTask(
                function=granted.step.removeprefix(WORKFLOW_TASK_PREFIX),
                history_after_seq=after,
                history_json=history_page(events, until_seq=started_seq),
                started_seq=started_seq,
            ),
        )

    @grpc_errors
    async def GetWorkflowHistory(
        self, request: pb.GetWorkflowHistoryRequest, context: Context
    ) -> pb.GetWorkflowHistoryResponse:
        token = _require(request.task_token, "task_token", "GetWorkflowHistory")
        worker_id = _require(request.worker_id, "worker_id", "GetWorkflowHistory")
        identity = await self.guard.identify(context)
        execution_id, step = _task_of(token, "GetWorkflowHistory")
        if step != WORKFLOW_TASK_STEP:
            raise InvalidRequest("GetWorkflowHistory: the task_token is not a workflow task's")
        authorize = self._task_access(identity, token, step)
        if authorize is not None:  # the caller's namespace and queue first: a worker id is only a claim
            await self.engine.authorize(execution_id, authorize)
        state = await self.engine.state_of(execution_id)
        live = state.workflow_task
        # Only the holder of the live task reads: the history is the execution's whole record.
        if live is None or live.token != token or live.worker_id != worker_id:
            raise PermissionDenied(
                f"GetWorkflowHistory: worker {worker_id!r} does not hold workflow task {token!r} (any more)"
            )
        after = max(0, request.after_seq)
        limit = min(request.limit or HISTORY_PAGE_EVENTS, HISTORY_PAGE_EVENTS, max(0, live.started_seq - after))
        events = await self.engine.load_history(execution_id, after_seq=after, limit=limit) if limit else []
        return pb.GetWorkflowHistoryResponse(history_json=history_page(events, until_seq=live.started_seq))

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
        reply, _ = await self._complete(request, await self.guard.identify(context), stream_steps_of(context))
        return reply

    @grpc_errors
    async def CompleteTasks(self, request: pb.CompleteTasksRequest, context: Context) -> pb.CompleteTasksResponse:
        """Several reports in one call, each handled as `CompleteTask` handles one (checked, authorised and
        decided on its own, its error its own); their decisions meet in the same group commits."""
        count = len(request.reports)
        if count > MAX_REPORTS_PER_CALL:
            raise InvalidRequest(
                f"CompleteTasks: {count} reports is more than the limit of {MAX_REPORTS_PER_CALL} reports a call"
            )
        identity = await self.guard.identify(context)
        steps = stream_steps_of(context)
        outcomes: list[Any]
        if count == 1:  # a worker at low load: no task around the one report, no loop turn for it
            try:
                outcomes = [await self._complete_checked(request.reports[0], identity, steps)]
            except Exception as error:  # as gather(return_exceptions=True) would give it; a cancel propagates
                outcomes = [error]
        else:
            outcomes = await asyncio.gather(
                *(self._complete_checked(report, identity, steps) for report in request.reports),
                return_exceptions=True,
            )
        response = pb.CompleteTasksResponse()
        room = self._reply_budget
        for outcome in outcomes:
            result = response.results.add()
            if isinstance(outcome, tuple):
                reply, granted = outcome
                room -= self._fit(reply, granted, room)
                result.reply.CopyFrom(reply)
                continue
            if not isinstance(outcome, Exception):  # cancelled, or worse: the call's own end
                raise outcome
            code, message = status_of(outcome, "CompleteTasks")
            result.error.code = code.value[0]
            result.error.message = message
            room -= len(message) + 16
        return response

    @property
    def _reply_budget(self) -> int:
        """The bytes a CompleteTasks reply may fill: the server's message limit, less a margin."""
        return grpc_message_limit(self.max_payload_bytes) - _REPLY_MARGIN

    def _fit(self, reply: pb.CompleteTaskResponse, granted: GrantedTask | None, room: int) -> int:
        """Make ``reply`` fit in ``room`` bytes of a batched reply; its size. What does not fit is not lost:
        a next task is kept for the worker's next poll, a continued history is read again (as when it did
        not fit one reply)."""
        size = reply.ByteSize()
        if size > room and granted is not None:
            self.dispatcher.keep_for_next_poll(granted)
            reply.ClearField("next_task")
            size = reply.ByteSize()
        if size > room and reply.HasField("workflow_task"):
            reply.workflow_task.history_json = ""
            size = reply.ByteSize()
        return size

    async def _complete_checked(
        self, request: pb.CompleteTaskRequest, identity: Identity, stream_steps: StreamSteps | None
    ) -> tuple[pb.CompleteTaskResponse, GrantedTask | None]:
        check_request(request, "CompleteTasks")
        return await self._complete(request, identity, stream_steps)

    async def _complete(
        self, request: pb.CompleteTaskRequest, identity: Identity, stream_steps: StreamSteps | None = None
    ) -> tuple[pb.CompleteTaskResponse, GrantedTask | None]:
        """One report: its reply, and the task leased to its worker that the reply carries (if any)."""
        token = _require(request.task_token, "task_token", "CompleteTask")
        worker_id = _require(request.worker_id, "worker_id", "CompleteTask")
        execution_id, step = _task_of(token, "CompleteTask")
        outcome = self._outcome(request, step)
        continuation = self._continuation(request, outcome)
        standing: list[Waiter] = []  # the report's stand-by, once its access is granted
        access = self._task_access(identity, token, step, continues=continuation is not None)

        def authorize(definition: WorkflowDefinition, state: ExecutionState) -> None:
            """The access check, then the stand-by for this worker's next task: registered here, under
            the execution's lock and just before the decision, it is first in line for this execution's
            next step, and a report refused (or one of another report of the same call) never holds it."""
            if access is not None:
                access(definition, state)
            if not standing and (standby := self._stand_by(request, identity, stream_steps)) is not None:
                standing.append(standby)

        granted: GrantedTask | None = None
        try:
            # Access and lease holder are both judged under the execution's lock, from its own record:
            # the holder by `decide` (the attempt's StepStarted), the namespace and queue here.
            decision = await self.engine.handle(
                execution_id,
                # A failed attempt's last progress is kept for the next attempt (Task.last_progress_json).
                cmd.TaskCompleted(
                    token,
                    outcome,
                    worker_id=worker_id,
                    progress=self.dispatcher.progress_of(token),
                    continuation=continuation,
                ),
                authorize=authorize,
            )
        except BaseException:
            if standing and (granted := self.dispatcher.collect(standing[0])) is not None:
                self.dispatcher.keep_for_next_poll(granted)  # leased to this worker: its next poll takes it
            raise
        if standing:
            granted = self.dispatcher.collect(standing[0])
        reply = pb.CompleteTaskResponse(disposition=_DISPOSITION[decision.reply])
        if continuation is not None and decision.continued_seq is not None:
            reply.workflow_task.CopyFrom(
                await self._continued(execution_id, continuation.after_seq, decision.continued_seq)
            )
        if granted is not None:
            reply.next_task.CopyFrom(_step_task(granted, TaskToken.parse(granted.token)))
        return reply, granted

    def _stand_by(
        self, request: pb.CompleteTaskRequest, identity: Identity, stream_steps: StreamSteps | None
    ) -> Waiter | None:
        """With ``poll_next``, the completion stands by for the worker's next step task (not a workflow
        task: a step's slot runs steps); None when it asks for none or may poll none of that queue.
        Its steps are its own, or with ``stream_steps`` those its Work stream's last poll of the queue
        sent (`remember_stream_steps`)."""
        if not request.HasField("poll_next"):
            return None
        poll = request.poll_next
        steps: Iterable[str] | None = poll.steps
        if not poll.steps and poll.stream_steps and stream_steps is not None:
            steps = stream_steps.get(poll.task_queue)
        if not poll.task_queue or not steps:
            return None  # nothing to stand by for; never a reason to refuse the outcome itself
        try:
            namespaces = self.guard.policy.worker_namespaces(identity, poll.task_queue)
        except PermissionDenied:
            return None  # the outcome still counts; the worker's own polls say why
        return self.dispatcher.stand_by(
            worker_id=request.worker_id,
            task_queue=poll.task_queue,
            steps=steps,
            namespaces=namespaces,
        )

    def _continuation(self, request: pb.CompleteTaskRequest, outcome: cmd.Outcome) -> cmd.Continuation | None:
        if not request.HasField("workflow_continuation"):
            return None
        if not isinstance(outcome, cmd.OutcomeSuccess):
            raise InvalidRequest("CompleteTask: a workflow_continuation goes only with a step's success")
        sent = request.workflow_continuation
        commands = parse_json(sent.commands_json, what="the continuation's commands", limit=self.max_payload_bytes)
        return cmd.Continuation(after_seq=sent.after_seq, time_ms=sent.time_ms, commands=commands)

    async def _continued(self, execution_id: str, after_seq: int, started_seq: int) -> pb.ContinuedWorkflowTask:
        """The recorded continuation's events, as the sticky workflow task it stands for would carry them."""
        events = self.engine.recent_events(execution_id, after_seq=after_seq, until_seq=started_seq)
        if events is None:
            events = await self.engine.load_history(
                execution_id, after_seq=after_seq, limit=min(HISTORY_PAGE_EVENTS, started_seq - after_seq)
            )
        history, last = history_page_to(events, until_seq=started_seq)
        whole = last == started_seq and events[0].seq == after_seq + 1  # else the worker replays next time
        return pb.ContinuedWorkflowTask(started_seq=started_seq, history_json=history if whole else "")

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
            case "workflow_commands":
                commands = parse_json(
                    request.workflow_commands.commands_json, what="the workflow task's commands", limit=limit
                )
                return cmd.OutcomeWorkflowCommands(commands)
        raise InvalidRequest(
            "CompleteTask: an outcome (success, failure, retry_after, sleep, approval, cancelled,"
            " workflow_commands) is required"
        )
