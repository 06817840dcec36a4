"""``WorkflowContext``: what workflow code calls to issue commands and read deterministic values."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NoReturn

from cerebelum.durations import Duration
from cerebelum.jsoncodec import to_jsonable
from cerebelum.workflow.definition import workflow_name
from cerebelum.workflow.errors import (
    ApprovalRejectedError,
    ApprovalTimedOutError,
    ChildFailedError,
    ContinueAsNew,
    SignalTimedOutError,
    StepFailedError,
    WorkflowStepError,
)
from cerebelum.workflow.history import Event, parse_time
from cerebelum.workflow.options import StepOptions, format_duration

__all__ = ["Signal", "WorkflowContext"]

_log = logging.getLogger("cerebelum.workflow.code")


@dataclass(frozen=True, slots=True)
class Signal:
    """A signal ``wf.wait_for_signal`` received."""

    name: str
    data: Any
    sender: str | None
    received_at: datetime | None


@dataclass(slots=True)
class _Waiter:
    kind: str  # the command type
    future: asyncio.Future[Any]
    data: Any = None  # an approval's data, given back with its grant


_FAILURES: dict[str, type[WorkflowStepError]] = {"step": StepFailedError, "child": ChildFailedError}
_FAILURE_BY_ERROR: dict[str, type[WorkflowStepError]] = {
    "ApprovalRejected": ApprovalRejectedError,
    "ApprovalTimedOut": ApprovalTimedOutError,
    "SignalTimedOut": SignalTimedOutError,
    "ChildFailed": ChildFailedError,
    "ChildCancelled": ChildFailedError,
}


class _ReplayQuietLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Logs only while the code runs live, so a replay does not repeat old lines."""

    def __init__(self, logger: logging.Logger, wf: WorkflowContext) -> None:
        super().__init__(logger, {})
        self._wf = wf

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802  (logging's name)
        return not self._wf.is_replaying and self.logger.isEnabledFor(level)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{self._wf.workflow} {self._wf.execution_id}] {msg}", kwargs


class WorkflowContext:
    """The ``wf`` argument of a workflow function.

    Every ``await wf.<command>`` is recorded by the engine and, on replay, answered from the history,
    so the code must reach its commands in the same order each time: use ``wf.now()``,
    ``wf.random()``, ``wf.uuid4()`` and ``wf.patched()`` instead of the clock, ``random`` and
    ``if new_version``.
    """

    def __init__(self, *, execution_id: str, workflow: str, loop: asyncio.AbstractEventLoop) -> None:
        self._execution_id = execution_id
        self._workflow = workflow
        self._loop = loop
        self._random = random.Random(execution_id)
        self._now = parse_time(None)
        self._replaying = False
        self._next_id = 1
        self._waiters: dict[int, _Waiter] = {}
        self._step_ids: dict[str, int] = {}
        self._commands: list[dict[str, Any]] = []
        self._expected: list[dict[str, Any]] | None = None
        self._patches: dict[str, bool] = {}
        self._logger = _ReplayQuietLogger(_log, self)

    # -- what workflow code reads -----------------------------------------------------------

    @property
    def execution_id(self) -> str:
        return self._execution_id

    @property
    def workflow(self) -> str:
        return self._workflow

    @property
    def is_replaying(self) -> bool:
        """True while the code catches up with the history (its commands were sent before)."""
        return self._replaying

    @property
    def logger(self) -> logging.LoggerAdapter:  # type: ignore[type-arg]
        """A logger that is silent while replaying."""
        return self._logger

    def now(self) -> datetime:
        """The current activation's time (aware, UTC): the same on every replay."""
        return self._now

    def random(self) -> random.Random:
        """A generator seeded with the execution id: the same numbers in the same code order on replay."""
        return self._random

    def uuid4(self) -> uuid.UUID:
        """A random UUID drawn from :meth:`random`."""
        return uuid.UUID(int=self._random.getrandbits(128), version=4)

    def patched(self, patch_id: str) -> bool:
        """True on runs that reach this point with the new code, false on histories from before the patch.

        Live, it records a ``patch`` marker and returns true; on replay, it returns whether the history
        recorded that marker here. The answer is kept for the rest of the run.
        """
        known = self._patches.get(patch_id)
        if known is not None:
            return known
        if self._expected is None:
            result = True
        else:
            index = len(self._commands)
            upcoming = self._expected[index] if index < len(self._expected) else None
            result = upcoming is not None and upcoming.get("type") == "patch" and upcoming.get("patch") == patch_id
        if result:
            self._commands.append({"type": "patch", "id": self._take_id(), "patch": patch_id})
        self._patches[patch_id] = result
        return result

    # -- commands that wait -----------------------------------------------------------------

    async def step(
        self, fn_or_name: Callable[..., Any] | str, /, *, options: StepOptions | None = None, **args: Any
    ) -> Any:
        """Run a step (a registered function, or its name) with ``args``; its output.

        Raises :class:`StepFailedError` when it fails for good.
        """
        if isinstance(fn_or_name, str):
            name = fn_or_name
        else:
            registered = getattr(fn_or_name, "__cerebelum_step__", None)
            name = registered if isinstance(registered, str) else fn_or_name.__name__
        command: dict[str, Any] = {"type": "step", "function": name, "args": to_jsonable(args)}
        if options is not None:
            command.update(options.to_json())
        return await self._wait(command)

    async def sleep(self, duration: Duration) -> None:
        """Sleep durably (seconds, a ``timedelta`` or ``"5s"``): a timer in the engine, not in this worker."""
        await self._wait({"type": "sleep", "duration": format_duration(duration)})

    async def wait_for_approval(
        self,
        name: str,
        *,
        timeout: Duration | None = None,  # noqa: ASYNC109  (a durable timeout the engine keeps)
        data: Any = None,
    ) -> dict[str, Any]:
        """Wait for someone to approve ``name``: ``{"approved", "approver", "payload", "data"}``.

        Raises :class:`ApprovalRejectedError` or :class:`ApprovalTimedOutError`.
        """
        command: dict[str, Any] = {"type": "approval", "name": name}
        if timeout is not None:
            command["timeout"] = format_duration(timeout)
        if data is not None:
            command["data"] = to_jsonable(data)
        result: dict[str, Any] = await self._wait(command, data=command.get("data"))
        return result

    async def wait_for_signal(
        self,
        name: str,
        *,
        timeout: Duration | None = None,  # noqa: ASYNC109  (a durable timeout the engine keeps)
    ) -> Signal:
        """Wait for the signal ``name``; raises :class:`SignalTimedOutError` after ``timeout``."""
        command: dict[str, Any] = {"type": "waitSignal", "name": name}
        if timeout is not None:
            command["timeout"] = format_duration(timeout)
        signal: Signal = await self._wait(command)
        return signal

    async def child(
        self,
        workflow: Callable[..., Any] | str,
        input: Any = None,
        *,
        on_parent_cancel: Literal["cancel", "abandon"] = "cancel",
    ) -> Any:
        """Run a child execution of ``workflow`` (a name, or a workflow function) to its end; its output.

        Raises :class:`ChildFailedError` when it fails or is cancelled.
        """
        if on_parent_cancel not in ("cancel", "abandon"):
            raise ValueError(f"on_parent_cancel must be 'cancel' or 'abandon', not {on_parent_cancel!r}")
        command = {
            "type": "child",
            "workflow": workflow_name(workflow),
            "input": to_jsonable(input),
            "onParentCancel": on_parent_cancel,
        }
        return await self._wait(command)

    def continue_as_new(self, input: Any = None) -> NoReturn:
        """End this run and start the next one with ``input`` (keeps a long loop's history short)."""
        raise ContinueAsNew(input)

    # -- for the instance that runs the code ------------------------------------------------

    def _begin(self, now: datetime, expected: list[dict[str, Any]] | None) -> None:
        self._now = now
        self._expected = expected
        self._replaying = expected is not None
        self._commands = []

    def _take_commands(self) -> list[dict[str, Any]]:
        commands, self._commands = self._commands, []
        return commands

    def _learn(self, recorded: list[dict[str, Any]]) -> None:
        """Remember the step names the engine gave the commands: the outcome events use them."""
        for command in recorded:
            step, ident = command.get("step"), command.get("id")
            if isinstance(step, str) and isinstance(ident, int):
                self._step_ids[step] = ident

    def _command_id(self, step: str) -> int | None:
        ident = self._step_ids.get(step)
        if ident is None:  # not learned: the engine's names end in "#<id>" ("charge#3")
            _, sep, tail = step.rpartition("#")
            ident = int(tail) if sep and tail.isdigit() else None
        return ident

    def _resolve(self, event: Event) -> None:
        step = str(event.data.get("step", ""))
        ident = self._command_id(step)
        waiter = self._waiters.pop(ident, None) if ident is not None else None
        if waiter is None:
            _log.debug("%s: seq %d (%s) answers no command that waits", self._execution_id, event.seq, event.type)
            return
        if waiter.future.done():  # the code stopped waiting (its task was cancelled)
            return
        if event.type == "StepFailed":
            error_type = str(event.data.get("error_type", "Error"))
            cls = _FAILURE_BY_ERROR.get(error_type) or _FAILURES.get(waiter.kind, WorkflowStepError)
            waiter.future.set_exception(cls(error_type, str(event.data.get("message", "")), step=step))
        elif event.type == "ApprovalGranted":
            data = event.data
            granted = {"approved": True, "approver": data.get("approver"), "payload": data.get("payload")}
            waiter.future.set_result({**granted, "data": waiter.data})
        else:
            waiter.future.set_result(self._result(waiter, event.data.get("output")))

    @staticmethod
    def _result(waiter: _Waiter, output: Any) -> Any:
        if waiter.kind == "sleep":
            return None
        if waiter.kind == "waitSignal":
            out = output if isinstance(output, dict) else {}
            received = out.get("receivedAt")
            return Signal(
                name=str(out.get("name", "")),
                data=out.get("data"),
                sender=out.get("sender"),
                received_at=parse_time(received) if received else None,
            )
        return output

    def _take_id(self) -> int:
        ident = self._next_id
        self._next_id += 1
        return ident

    async def _wait(self, command: dict[str, Any], *, data: Any = None) -> Any:
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("wf commands can only be awaited in the workflow's own code, not from another loop")
        ident = self._take_id()
        issued = {"type": command["type"], "id": ident, **{k: v for k, v in command.items() if k != "type"}}
        future: asyncio.Future[Any] = self._loop.create_future()
        self._waiters[ident] = _Waiter(str(command["type"]), future, data)
        self._commands.append(issued)
        return await future
