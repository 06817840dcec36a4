"""Answers workflow tasks: brings the execution's code up to date with its history, runs it, sends its commands."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from cerebelum.v1 import worker_pb2
from cerebelum.workflow.cache import WorkflowCache
from cerebelum.workflow.commands import TERMINAL_TYPES
from cerebelum.workflow.definition import WorkflowDefinition
from cerebelum.workflow.errors import NonDeterminismError, WorkflowTaskError
from cerebelum.workflow.history import Event, from_epoch_ms, parse_events
from cerebelum.workflow.loop import DEFAULT_MAX_CALLBACKS
from cerebelum.workflow.replay import Replayer, StaleInstanceError

__all__ = ["Continuation", "HistoryRpc", "WorkflowTaskHandler"]

log = logging.getLogger("cerebelum.worker")

_HISTORY_TIMEOUT = 30.0  # seconds for one page of GetWorkflowHistory


class HistoryRpc(Protocol):
    """``WorkerService.GetWorkflowHistory`` (the gRPC stub, or a fake)."""

    def __call__(
        self, request: worker_pb2.GetWorkflowHistoryRequest, *, timeout: float | None = None
    ) -> Awaitable[worker_pb2.GetWorkflowHistoryResponse]: ...


class Continuation:
    """The code of a cached execution run on a step's result, waiting for the engine's word (`settle`)."""

    __slots__ = ("execution_id", "message", "replayer")

    def __init__(self, execution_id: str, replayer: Replayer, message: worker_pb2.WorkflowContinuation) -> None:
        self.execution_id = execution_id
        self.replayer = replayer
        self.message = message


class WorkflowTaskHandler:
    """Runs workflow tasks for the registered functions, keeping live instances in a sticky cache.

    A task that follows the one this worker answered (``history_after_seq`` is the seq the cached
    instance has seen) only applies the new events; any other is replayed from the whole history.
    """

    def __init__(
        self,
        *,
        workflows: Mapping[str, WorkflowDefinition],
        worker_id: str,
        history_rpc: HistoryRpc,
        max_cached_workflows: int = 1000,
        max_callbacks: int = DEFAULT_MAX_CALLBACKS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._workflows = workflows
        self._worker_id = worker_id
        self._history_rpc = history_rpc
        self._max_callbacks = max_callbacks
        self._clock = clock  # epoch seconds: a continuation's now()
        self.cache = WorkflowCache(max_cached_workflows)

    async def run(self, task: worker_pb2.Task) -> worker_pb2.CompleteTaskRequest:
        """The ``CompleteTaskRequest`` answering ``task``: its commands, or a ``Failure`` the engine retries."""
        wt = task.workflow_task
        definition = self._workflows.get(wt.function)
        if definition is None:
            return self._failure(task, "WorkflowTaskError", f"this worker has no workflow function {wt.function!r}")
        try:
            replayer, commands = await self._activate(task, definition)
        except NonDeterminismError as exc:
            log.error("workflow task of %s: %s", task.execution_id, exc)
            return self._failure(task, "NonDeterminism", str(exc), exc)
        except Exception as exc:
            log.error("workflow task of %s failed: %s", task.execution_id, exc, exc_info=exc)
            return self._failure(task, "WorkflowTaskError", f"{type(exc).__name__}: {exc}", exc)
        if commands and commands[-1].get("type") in TERMINAL_TYPES:
            replayer.close()  # the execution ends: nothing will follow
        else:
            self.cache.put(task.execution_id, replayer)
        return worker_pb2.CompleteTaskRequest(
            task_token=task.task_token,
            worker_id=self._worker_id,
            workflow_commands=worker_pb2.WorkflowCommands(commands_json=json.dumps(commands, separators=(",", ":"))),
        )

    def close(self) -> None:
        self.cache.clear()

    # -- continuations: a step's result and the code's next commands in one report ---------------------

    def continue_after(self, task: worker_pb2.Task, output_json: str) -> Continuation | None:
        """Run the cached code of ``task``'s execution on this step result, for the report to carry.

        ``None`` when this worker does not hold the execution ready to run (not cached, or it has
        news to see first) or the code failed: the engine then schedules a workflow task as usual.
        """
        replayer = self.cache.take(task.execution_id)
        if replayer is None:
            return None
        if not replayer.can_continue:
            self.cache.put(task.execution_id, replayer)
            return None
        time_ms = int(self._clock() * 1000)
        try:
            output = json.loads(output_json) if output_json else None
            commands = replayer.continue_with(
                step=task.workflow_step or task.step, output=output, now=from_epoch_ms(time_ms)
            )
        except Exception as exc:  # the workflow task that follows runs it again and reports it
            log.info("workflow %s: not continued on the step's result (%s)", task.execution_id, exc)
            replayer.close()
            return None
        message = worker_pb2.WorkflowContinuation(
            after_seq=replayer.last_seq, time_ms=time_ms, commands_json=json.dumps(commands, separators=(",", ":"))
        )
        return Continuation(task.execution_id, replayer, message)

    def settle(self, continuation: Continuation, reply: worker_pb2.CompleteTaskResponse | None) -> None:
        """Keep the instance if the engine recorded its continuation; otherwise it ran ahead of the
        history and is dropped (the next workflow task replays the execution)."""
        replayer = continuation.replayer
        recorded = reply.workflow_task if reply is not None and reply.HasField("workflow_task") else None
        if recorded is None or not recorded.history_json:
            replayer.close()
            return
        try:
            replayer.adopt(parse_events(recorded.history_json), recorded.started_seq)
        except WorkflowTaskError as exc:
            log.info("workflow %s: dropped after its continuation (%s)", continuation.execution_id, exc)
            replayer.close()
            return
        if replayer.outcome is not None:
            replayer.close()  # the execution ends: nothing will follow
            return
        self.cache.put_back(continuation.execution_id, replayer)

    async def _activate(
        self, task: worker_pb2.Task, definition: WorkflowDefinition
    ) -> tuple[Replayer, list[dict[str, object]]]:
        wt = task.workflow_task
        cached = self.cache.take(task.execution_id)
        if wt.history_after_seq and cached is not None and cached.last_seq == wt.history_after_seq:
            events = await self._complete(task, parse_events(wt.history_json), wt.history_after_seq)
            try:
                return cached, self._run(cached, events, wt.started_seq)
            except StaleInstanceError as exc:
                log.info("workflow %s: replaying from the start (%s)", task.execution_id, exc)
                cached.close()
            events = await self._complete(task, [], 0)
        else:
            if cached is not None:
                cached.close()
            # Not held at that seq (evicted, restarted, or answered by another worker): the whole history.
            events = parse_events(wt.history_json) if wt.history_after_seq == 0 else []
            events = await self._complete(task, events, 0)
        replayer = Replayer(
            definition, execution_id=task.execution_id, workflow=task.workflow, max_callbacks=self._max_callbacks
        )
        try:
            return replayer, self._run(replayer, events, wt.started_seq)
        except BaseException:
            replayer.close()
            raise

    @staticmethod
    def _run(replayer: Replayer, events: list[Event], started_seq: int) -> list[dict[str, object]]:
        replayer.feed(events)
        return list(replayer.run_live(started_seq))

    async def _complete(self, task: worker_pb2.Task, events: list[Event], after_seq: int) -> list[Event]:
        """``events`` (following ``after_seq``) and, read page by page, the rest up to the task's start."""
        started = task.workflow_task.started_seq
        last = events[-1].seq if events else after_seq
        while last < started:
            request = worker_pb2.GetWorkflowHistoryRequest(
                task_token=task.task_token, worker_id=self._worker_id, after_seq=last
            )
            reply = await self._history_rpc(request, timeout=_HISTORY_TIMEOUT)
            page = [event for event in parse_events(reply.history_json) if event.seq > last]
            if not page:
                break  # the engine has nothing more: run_live says what is missing
            events.extend(page)
            last = page[-1].seq
        return events

    def _failure(
        self, task: worker_pb2.Task, kind: str, message: str, exc: BaseException | None = None
    ) -> worker_pb2.CompleteTaskRequest:
        stacktrace = "".join(traceback.format_exception(exc)) if exc is not None else ""
        failure = worker_pb2.Failure(type=kind, message=message, non_retryable=False, stacktrace=stacktrace)
        return worker_pb2.CompleteTaskRequest(task_token=task.task_token, worker_id=self._worker_id, failure=failure)
