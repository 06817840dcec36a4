"""One live run of workflow code: its loop, its context, and the commands each activation issues."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cerebelum.errors import ApplicationError
from cerebelum.jsoncodec import to_jsonable
from cerebelum.workflow.context import WorkflowContext
from cerebelum.workflow.definition import WorkflowDefinition
from cerebelum.workflow.errors import ContinueAsNew, WorkflowTaskError
from cerebelum.workflow.history import Event
from cerebelum.workflow.loop import DEFAULT_MAX_CALLBACKS, new_loop

__all__ = ["WorkflowInstance"]

CANCEL_REQUESTED = "ExecutionCancelRequested"


class WorkflowInstance:
    """Runs a workflow function activation by activation on its own :class:`DeterministicLoop`."""

    def __init__(
        self,
        definition: WorkflowDefinition,
        *,
        execution_id: str,
        workflow: str,
        input: Any,
        max_callbacks: int = DEFAULT_MAX_CALLBACKS,
    ) -> None:
        self.definition = definition
        self.loop = new_loop(max_callbacks=max_callbacks)
        self.ctx = WorkflowContext(execution_id=execution_id, workflow=workflow, loop=self.loop)
        self._input = input
        self._main: asyncio.Task[Any] | None = None
        self._cancel_reason: str | None = None
        self.finished = False

    def activate(
        self, *, now: datetime, outcomes: Sequence[Event], expected: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]]:
        """Resolve ``outcomes`` in order, run the code until every coroutine waits, return what it issued.

        ``expected`` is the recorded commands of a replayed activation (``None`` when live): ``patched``
        reads them. The last command ends the execution when the function returned or raised.
        """
        if self.finished:
            raise WorkflowTaskError("the workflow code already ended; the history goes on after its end")
        self.loop.set_time(now.timestamp())
        self.ctx._begin(now, expected)
        if self._main is None:
            self._main = self.loop.create_task(self._call(), name=f"workflow {self.definition.name}")
        for event in outcomes:
            if event.type == CANCEL_REQUESTED:
                if not self._main.done() and self._cancel_reason is None:
                    self._cancel_reason = str(event.data.get("reason") or "the execution was cancelled")
                    self._main.cancel(self._cancel_reason)
            else:
                self.ctx._resolve(event)
        self.loop.run_until_idle()
        commands = self.ctx._take_commands()
        if self._main.done():
            commands.append(self._ending(self._main))
            self.finished = True
        return commands

    def learn(self, recorded: list[dict[str, Any]]) -> None:
        """The engine's names of the commands (from ``WorkflowTaskCompleted``), which outcome events use."""
        self.ctx._learn(recorded)

    def close(self) -> None:
        """Stop the code's pending coroutines (the instance is evicted), quietly: as if replaying."""
        self.ctx._begin(self.ctx.now(), [])
        self.loop.close_tasks()
        self.loop.close()

    async def _call(self) -> Any:
        if self.definition.takes_input:
            return await self.definition.fn(self.ctx, self.definition.convert_input(self._input))
        return await self.definition.fn(self.ctx)

    def _ending(self, main: asyncio.Task[Any]) -> dict[str, Any]:
        if main.cancelled():
            return {"type": "cancelled", "message": self._cancel_reason or "the workflow code was cancelled"}
        error = main.exception()
        if error is None:
            try:
                return {"type": "complete", "output": to_jsonable(main.result())}
            except Exception as exc:
                message = f"the workflow's output cannot be encoded as JSON: {exc}"
                return {"type": "fail", "errorType": "InvalidOutput", "message": message}
        if isinstance(error, ContinueAsNew):
            try:
                return {"type": "continueAsNew", "input": to_jsonable(error.input)}
            except Exception as exc:
                message = f"the input of continue_as_new cannot be encoded as JSON: {exc}"
                return {"type": "fail", "errorType": "InvalidInput", "message": message}
        error_type = error.type if isinstance(error, ApplicationError) else type(error).__name__
        message = error.message if isinstance(error, ApplicationError) else str(error)
        stacktrace = "".join(traceback.format_exception(error))
        return {"type": "fail", "errorType": error_type, "message": message, "stacktrace": stacktrace}
