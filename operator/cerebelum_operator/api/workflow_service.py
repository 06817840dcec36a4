"""gRPC WorkflowService: what the CLI and the SDK client call."""

from __future__ import annotations

import contextvars
import functools
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from cerebelum.v1 import workflow_pb2 as pb
from cerebelum.v1 import workflow_pb2_grpc as pb_grpc

from ..engine import ExecutionState
from ..engine import commands as cmd
from ..engine.pause import MAX_PAUSE_REASON
from ..engine.state import FanOut
from ..model import compile_workflow
from ..model.limits import task_budget
from ..runtime import EngineService, ExecutionNotFound, WorkflowNotFound
from ..runtime.bulk import DEFAULT_BULK_LIMIT, BulkAction, BulkOutcome, BulkQuery, run_bulk, select
from ..runtime.engine_service import LiveStep
from ..runtime.flow_control import WORKFLOW_PAUSE, FlowControlService
from ..runtime.resets import reset_execution
from ..store import ExecutionQuery, ExecutionRow, PageCursor, WorkflowPauseRow, WorkflowRow
from .auth import ANONYMOUS, Identity, PermissionDenied
from .errors import Context, InvalidRequest, grpc_errors
from .guard import Guard
from .payloads import dump_json, parse_json
from .times import timestamp

__all__ = ["WorkflowServicer"]

NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
EXECUTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
MAX_WAIT_MS = 60_000

T = TypeVar("T")
_NOTHING_LIVE = LiveStep()
_caller: contextvars.ContextVar[Identity] = contextvars.ContextVar("caller", default=ANONYMOUS)


def _client_rpc(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Authenticate the caller, check the policy's ``clients`` rules, and remember who it is."""

    @functools.wraps(method)
    async def wrapper(self: WorkflowServicer, request: Any, context: Context) -> T:
        identity = await self.guard.identify(context)
        self.guard.policy.check_client(identity, method.__name__)
        _caller.set(identity)
        return await method(self, request, context)

    return wrapper


def _approver(claimed: str, rpc: str) -> str:
    """The approver to record: the authenticated user; a claim of anyone else is refused."""
    caller = _caller.get()
    if not caller.authenticated or caller.shared:
        if not claimed:
            raise InvalidRequest(f"{rpc}: approver is required")
        return claimed
    if claimed and claimed != caller.username:
        raise PermissionDenied(
            f"{rpc}: approver {claimed!r} is not the authenticated user {caller.username!r};"
            " approvals are recorded under the caller's own identity"
        )
    return caller.username


def _execution_query(request: pb.ListExecutionsRequest) -> ExecutionQuery:
    """The store's query for a ListExecutions request; the old single ``phase`` joins ``phases``."""
    phases = tuple(dict.fromkeys([*request.phases, *([request.phase] if request.phase else [])]))
    return ExecutionQuery(
        workflow=request.workflow or None,
        phases=phases,
        labels=tuple(sorted(request.labels.items())),
        created_from_ms=request.created_after.ToMilliseconds() if request.HasField("created_after") else None,
        created_to_ms=request.created_before.ToMilliseconds() if request.HasField("created_before") else None,
        id_contains=request.id_contains or None,
    )


def _items_progress(fan: FanOut | None) -> pb.ItemsProgress | None:
    if fan is None:
        return None
    return pb.ItemsProgress(total=len(fan.items), done=fan.done, failed=fan.failed, in_flight=len(fan.live))


def _workflow_info(row: WorkflowRow, pause: WorkflowPauseRow | None = None) -> pb.WorkflowInfo:
    info = pb.WorkflowInfo(
        name=row.name,
        spec_json=dump_json(row.spec),
        version=row.version,
        updated_at_ms=row.updated_at_ms,
        updated_at=timestamp(row.updated_at_ms),
    )
    if pause is not None:
        info.pause.CopyFrom(
            pb.ExecutionPause(source=WORKFLOW_PAUSE, reason=pause.reason, by=pause.by, at=timestamp(pause.at_ms))
        )
    return info


def execution_info(
    row: ExecutionRow,
    state: ExecutionState | None = None,
    live: Mapping[str, LiveStep] | None = None,
    *,
    labels: Mapping[str, str] | None = None,
) -> pb.ExecutionInfo:
    """The execution view; ``live`` adds what the dispatcher knows of running and waiting steps."""
    info = pb.ExecutionInfo(
        labels=labels or {},
        id=row.execution_id,
        workflow=row.workflow,
        phase=row.phase,
        current_steps=row.current_steps,
        input_json=dump_json(row.input),
        output_json=dump_json(row.output),
        error=row.error or "",
        created_at_ms=row.created_at_ms,
        updated_at_ms=row.updated_at_ms,
        wake_at_ms=row.wake_at_ms or 0,
        created_at=timestamp(row.created_at_ms),
        updated_at=timestamp(row.updated_at_ms),
        wake_at=timestamp(row.wake_at_ms),
        event_count=row.last_seq,
    )
    if state is not None:
        for name, step in state.steps.items():
            now = (live or {}).get(name, _NOTHING_LIVE)
            info.steps.append(
                pb.StepInfo(
                    name=name,
                    phase=step.phase.value,
                    attempts=step.total_attempts,
                    started_at_ms=step.started_at_ms or 0,
                    finished_at_ms=step.finished_at_ms or 0,
                    started_at=timestamp(step.started_at_ms),
                    finished_at=timestamp(step.finished_at_ms),
                    last_error=step.last_error or "",
                    last_stacktrace=step.last_stacktrace,
                    progress_json=dump_json(now.progress),
                    waiting_hint=now.waiting_hint or "",
                    items=_items_progress(state.fan_outs.get(name)),
                )
            )
        if state.vars:
            info.vars_json = dump_json(state.vars)
        if state.ending is not None:
            info.ending = state.ending.outcome.value
        deadline = None if state.phase.terminal else timestamp(state.deadline_ms)
        if deadline is not None:
            info.deadline.CopyFrom(deadline)
        for rule, cut in state.jump_limits.items():
            info.jump_limits.append(
                pb.JumpLimit(rule=rule, step=cut.step, target=cut.target, bound=cut.bound, times=cut.times)
            )
        _composition(info, state)
        for name, approval in state.approvals.items():
            info.pending_approvals.append(
                pb.PendingApproval(
                    step=name,
                    kind=approval.approval_kind,
                    data_json=dump_json(approval.data),
                    timeout_at_ms=approval.timeout_at_ms or 0,
                    timeout_at=timestamp(approval.timeout_at_ms),
                )
            )
    return info


def _composition(info: pb.ExecutionInfo, state: ExecutionState) -> None:
    """Signals queued and waited for, the parent and children, and the continue-as-new chain."""
    for queued in state.signals:
        info.queued_signals.append(
            pb.QueuedSignal(
                name=queued.name,
                data_json=dump_json(queued.data),
                sender=queued.sender,
                received_at=timestamp(queued.received_at_ms),
            )
        )
    for step, wait in state.signal_waits.items():
        waiting = pb.SignalWait(step=step, name=wait.name)
        timeout_at = timestamp(wait.timeout_at_ms)
        if timeout_at is not None:
            waiting.timeout_at.CopyFrom(timeout_at)
        info.signal_waits.append(waiting)
    info.parent_id = state.parent_id or ""
    info.parent_step = state.parent_step or ""
    for link in state.children:
        info.children.append(
            pb.ChildExecution(step=link.step, id=link.child_id, workflow=link.workflow, phase=link.phase)
        )
    info.continued_from = state.continued_from or ""
    info.continued_as = state.continued_as or ""
    info.first_run_id = state.chain_id
    info.run = state.run
    info.workflow_task_error = state.workflow_task_error or ""
    info.reset_from = state.reset_from or ""
    for source, hold in state.holds.items():
        info.pauses.append(pb.ExecutionPause(source=source, reason=hold.reason, by=hold.by, at=timestamp(hold.at_ms)))


def _actor() -> str:
    """Who to record as having paused or resumed: the authenticated caller, "" without a token."""
    caller = _caller.get()
    return caller.username if caller.authenticated and not caller.shared else ""


def _signal(name: str, data_json: str, request_id: str, *, limit: int) -> cmd.Signal:
    if not name:
        raise InvalidRequest("a signal's name is required")
    data = parse_json(data_json, what="signal data", limit=limit)
    return cmd.Signal(name, data, sender=_caller.get().username, request_id=request_id or None)


class WorkflowServicer(pb_grpc.WorkflowServiceServicer):
    def __init__(
        self,
        engine: EngineService,
        *,
        max_payload_bytes: int,
        guard: Guard | None = None,
        flow_control: FlowControlService | None = None,
    ) -> None:
        self.engine = engine
        self.flow_control = flow_control
        self.guard = guard or Guard()
        self.max_payload_bytes = max_payload_bytes
        # A page of history stops short of the message limit: events of large payloads add up.
        self.history_page_bytes = task_budget(max_payload_bytes)

    async def _info(self, execution_id: str) -> pb.ExecutionInfo:
        row = await self.engine.get_execution(execution_id)
        if row is None:
            raise await self.engine.missing(execution_id)
        state = await self.engine.state_of(execution_id)
        labels = (await self.engine.labels_of([execution_id])).get(execution_id)
        return execution_info(row, state, self.engine.live_steps(state), labels=labels)

    @grpc_errors
    @_client_rpc
    async def ApplyWorkflow(self, request: pb.ApplyWorkflowRequest, context: Context) -> pb.WorkflowInfo:
        if not NAME.match(request.name):
            raise InvalidRequest(
                f"workflow name {request.name!r} is not valid: use lowercase letters, digits, '-' and '.'"
            )
        spec = parse_json(request.spec_json, what="workflow spec", limit=self.max_payload_bytes)
        if not isinstance(spec, dict):
            raise InvalidRequest("workflow spec must be a JSON object")
        compile_workflow(spec)
        row = await self.engine.put_workflow(request.name, spec)
        return _workflow_info(row, self._pause_of(row.name))

    @grpc_errors
    @_client_rpc
    async def GetWorkflow(self, request: pb.GetWorkflowRequest, context: Context) -> pb.WorkflowInfo:
        row = await self.engine.get_workflow(request.name)
        if row is None:
            raise WorkflowNotFound(f"workflow {request.name!r} not found")
        return _workflow_info(row, self._pause_of(row.name))

    @grpc_errors
    @_client_rpc
    async def ListWorkflows(self, request: pb.ListWorkflowsRequest, context: Context) -> pb.ListWorkflowsResponse:
        rows = await self.engine.list_workflows()
        return pb.ListWorkflowsResponse(workflows=[_workflow_info(r, self._pause_of(r.name)) for r in rows])

    def _pause_of(self, workflow: str) -> WorkflowPauseRow | None:
        return None if self.flow_control is None else self.flow_control.pause_of(workflow)

    def _flow(self, rpc: str) -> FlowControlService:
        if self.flow_control is None:
            raise InvalidRequest(f"{rpc}: this engine does not pause workflows")
        return self.flow_control

    @grpc_errors
    @_client_rpc
    async def PauseWorkflow(self, request: pb.PauseWorkflowRequest, context: Context) -> pb.WorkflowInfo:
        row = await self.engine.get_workflow(request.name)
        if row is None:
            raise WorkflowNotFound(f"workflow {request.name!r} not found")
        reason = request.reason[:MAX_PAUSE_REASON] or f"workflow {request.name!r} is paused"
        pause = await self._flow("PauseWorkflow").pause_workflow(request.name, reason=reason, by=_actor())
        return _workflow_info(row, pause)

    @grpc_errors
    @_client_rpc
    async def ResumeWorkflow(self, request: pb.ResumeWorkflowRequest, context: Context) -> pb.WorkflowInfo:
        row = await self.engine.get_workflow(request.name)
        if row is None:
            raise WorkflowNotFound(f"workflow {request.name!r} not found")
        await self._flow("ResumeWorkflow").resume_workflow(request.name, by=_actor())
        return _workflow_info(row)

    @grpc_errors
    @_client_rpc
    async def StartExecution(self, request: pb.StartExecutionRequest, context: Context) -> pb.ExecutionInfo:
        if not request.workflow:
            raise InvalidRequest("StartExecution: workflow is required")
        execution_id = request.execution_id or uuid.uuid4().hex[:20]
        if not EXECUTION_ID.match(execution_id):
            raise InvalidRequest(f"execution id {execution_id!r} is not valid: use letters, digits, '_', '.', ':', '-'")
        value: Any = parse_json(request.input_json, what="execution input", limit=self.max_payload_bytes)
        row, created = await self.engine.start_or_find(
            request.workflow, value, execution_id=execution_id, labels=request.labels
        )
        # A new execution's labels are those given; a repeated start's are the first start's, in the store.
        labels = (
            (dict(request.labels) or None)
            if created
            else (await self.engine.labels_of([row.execution_id])).get(row.execution_id)
        )
        return execution_info(row, await self.engine.state_of(row.execution_id), labels=labels)

    @grpc_errors
    @_client_rpc
    async def GetExecution(self, request: pb.GetExecutionRequest, context: Context) -> pb.ExecutionInfo:
        execution_id = await self.engine.latest_run(request.id) if request.latest_run else request.id
        return await self._info(execution_id)

    @grpc_errors
    @_client_rpc
    async def ListExecutions(self, request: pb.ListExecutionsRequest, context: Context) -> pb.ListExecutionsResponse:
        query = _execution_query(request)
        try:
            after = PageCursor.decode(request.page_token) if request.page_token else None
        except ValueError as bad:
            raise InvalidRequest(f"ListExecutions: page_token: {bad}; pass a next_page_token as it came") from None
        page = await self.engine.list_executions_page(query, after=after, limit=min(request.limit or 100, 1000))
        labels = await self.engine.labels_of([r.execution_id for r in page.rows])
        return pb.ListExecutionsResponse(
            executions=[execution_info(r, labels=labels.get(r.execution_id)) for r in page.rows],
            next_page_token="" if page.next is None else page.next.encode(),
        )

    @grpc_errors
    @_client_rpc
    async def GetHistory(self, request: pb.GetHistoryRequest, context: Context) -> pb.GetHistoryResponse:
        if await self.engine.get_execution(request.id) is None:
            raise await self.engine.missing(request.id)
        events = await self.engine.load_history(
            request.id, after_seq=request.after_seq, limit=min(request.limit or 500, 1000)
        )
        page: list[pb.HistoryEvent] = []
        size = 0
        for e in events:
            data = dump_json(e.event.to_data())
            size += len(data) + 64
            if page and size > self.history_page_bytes:
                break  # the caller asks again after the last seq it got
            page.append(
                pb.HistoryEvent(seq=e.seq, type=e.event.kind, at_ms=e.at_ms, at=timestamp(e.at_ms), data_json=data)
            )
        return pb.GetHistoryResponse(events=page)

    @grpc_errors
    @_client_rpc
    async def WaitExecution(self, request: pb.WaitExecutionRequest, context: Context) -> pb.ExecutionInfo:
        wait_s = min(request.wait_ms or MAX_WAIT_MS, MAX_WAIT_MS) / 1000
        if not request.follow_runs:
            await self.engine.wait_terminal(request.id, wait_s)
            return await self._info(request.id)
        deadline = self.engine.clock.now_ms() + wait_s * 1000
        execution_id = await self.engine.latest_run(request.id)
        while True:  # a run that continues as new ends; its next run is the one to wait for
            left = (deadline - self.engine.clock.now_ms()) / 1000
            if left > 0:
                await self.engine.wait_terminal(execution_id, left)
            latest = await self.engine.latest_run(execution_id)
            if latest == execution_id or left <= 0:
                return await self._info(latest)
            execution_id = latest

    @grpc_errors
    @_client_rpc
    async def Approve(self, request: pb.ApproveRequest, context: Context) -> pb.ExecutionInfo:
        if not request.step:
            raise InvalidRequest("Approve: step is required")
        approver = _approver(request.approver, "Approve")
        payload = parse_json(request.payload_json, what="approval payload", limit=self.max_payload_bytes)
        await self.engine.handle(request.id, cmd.Approve(request.step, approver, payload))
        return await self._info(request.id)

    @grpc_errors
    @_client_rpc
    async def Reject(self, request: pb.RejectRequest, context: Context) -> pb.ExecutionInfo:
        if not request.step:
            raise InvalidRequest("Reject: step is required")
        approver = _approver(request.approver, "Reject")
        await self.engine.handle(request.id, cmd.Reject(request.step, approver, request.reason))
        return await self._info(request.id)

    @grpc_errors
    @_client_rpc
    async def SignalExecution(self, request: pb.SignalExecutionRequest, context: Context) -> pb.ExecutionInfo:
        signal = _signal(request.name, request.data_json, request.request_id, limit=self.max_payload_bytes)
        reached = await self.engine.signal(request.id, signal)
        return await self._info(reached)

    @grpc_errors
    @_client_rpc
    async def SignalWithStart(self, request: pb.SignalWithStartRequest, context: Context) -> pb.ExecutionInfo:
        if not request.workflow:
            raise InvalidRequest("SignalWithStart: workflow is required")
        if not EXECUTION_ID.match(request.execution_id):
            raise InvalidRequest(
                f"SignalWithStart: execution id {request.execution_id!r} is required and must use letters,"
                " digits, '_', '.', ':', '-'"
            )
        signal = _signal(request.name, request.data_json, request.request_id, limit=self.max_payload_bytes)
        value: Any = parse_json(request.input_json, what="execution input", limit=self.max_payload_bytes)
        row = await self.engine.signal_with_start(
            request.workflow, value, execution_id=request.execution_id, signal=signal, labels=request.labels
        )
        return await self._info(row.execution_id)

    @grpc_errors
    @_client_rpc
    async def CancelExecution(self, request: pb.CancelExecutionRequest, context: Context) -> pb.ExecutionInfo:
        await self.engine.handle(request.id, cmd.Cancel(request.reason or "cancelled"))
        return await self._info(request.id)

    @grpc_errors
    @_client_rpc
    async def PauseExecution(self, request: pb.PauseExecutionRequest, context: Context) -> pb.ExecutionInfo:
        await self.engine.handle(request.id, cmd.Pause(request.reason, _actor()))
        return await self._info(request.id)

    @grpc_errors
    @_client_rpc
    async def ResumeExecution(self, request: pb.ResumeExecutionRequest, context: Context) -> pb.ExecutionInfo:
        await self.engine.handle(request.id, cmd.Resume(_actor()))
        return await self._info(request.id)

    @grpc_errors
    @_client_rpc
    async def ResetExecution(self, request: pb.ResetExecutionRequest, context: Context) -> pb.ExecutionInfo:
        if not request.step:
            raise InvalidRequest("ResetExecution: step is required")
        new_id = request.new_id or f"{request.id[:110]}-reset-{uuid.uuid4().hex[:8]}"
        if not EXECUTION_ID.match(new_id):
            raise InvalidRequest(f"new execution id {new_id!r} is not valid: use letters, digits, '_', '.', ':', '-'")
        row = await reset_execution(self.engine, request.id, request.step, new_id=new_id, reason=request.reason)
        return await self._info(row.execution_id)

    @grpc_errors
    @_client_rpc
    async def BulkExecutions(self, request: pb.BulkExecutionsRequest, context: Context) -> pb.BulkExecutionsResponse:
        try:
            action = BulkAction(request.action)
        except ValueError:
            raise InvalidRequest(
                f"BulkExecutions: action {request.action!r} is not one of {', '.join(a.value for a in BulkAction)}"
            ) from None
        query = BulkQuery(
            ids=tuple(request.ids),
            workflow=request.workflow or None,
            phase=request.phase or None,
            everything=request.all,
            limit=request.limit or DEFAULT_BULK_LIMIT,
        )
        problem = query.problem()
        if problem is not None:
            raise InvalidRequest(f"BulkExecutions: {problem}")
        ids, truncated = await select(self.engine, query)
        if request.dry_run:
            outcomes = [BulkOutcome(execution_id, "unchanged") for execution_id in ids]
        else:
            outcomes = await run_bulk(self.engine, action, ids, reason=request.reason, by=_actor())
        return pb.BulkExecutionsResponse(
            outcomes=[pb.BulkOutcome(id=o.execution_id, result=o.result, error=o.error) for o in outcomes],
            truncated=truncated,
        )

    @grpc_errors
    @_client_rpc
    async def ListDeadLetters(self, request: pb.ListDeadLettersRequest, context: Context) -> pb.ListDeadLettersResponse:
        rows = await self.engine.list_dead_letters(execution_id=request.execution_id or None)
        return pb.ListDeadLettersResponse(
            dead_letters=[
                pb.DeadLetter(
                    id=r.dead_letter_id,
                    execution_id=r.execution_id,
                    step=r.step,
                    attempt=r.attempt,
                    error=r.error,
                    created_at_ms=r.created_at_ms,
                    created_at=timestamp(r.created_at_ms),
                )
                for r in rows
            ]
        )

    @grpc_errors
    @_client_rpc
    async def RedriveDeadLetter(self, request: pb.RedriveDeadLetterRequest, context: Context) -> pb.ExecutionInfo:
        row = await self.engine.get_dead_letter(request.id)
        if row is None or row.resolved_at_ms is not None:
            raise ExecutionNotFound(f"dead letter {request.id!r} not found (or already redriven)")
        await self.engine.redrive(row.execution_id, request.id, with_current_workflow=request.with_current_workflow)
        return await self._info(row.execution_id)
