"""Synthetic histories of code workflows, made as the engine records them (docs/code-workflows-protocol.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cerebelum.workflow.commands import TERMINAL_TYPES
from cerebelum.workflow.definition import WorkflowDefinition
from cerebelum.workflow.history import parse_events
from cerebelum.workflow.replay import Replayer

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WAITING = frozenset({"step", "sleep", "approval", "waitSignal", "child"})
ENDINGS = {
    "complete": "ExecutionSucceeded",
    "fail": "ExecutionFailed",
    "continueAsNew": "ExecutionContinuedAsNew",
    "cancelled": "ExecutionCancelled",
}

Command = dict[str, Any]


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def step_name(command: Command) -> str:
    """The name the engine gives a command's step (``charge#3``, ``sleep#4``, ``signal.go#5``)."""
    kind, ident = command["type"], command["id"]
    if kind == "step":
        return f"{command['function']}#{ident}"
    if kind == "waitSignal":
        return f"signal.{command['name']}#{ident}"
    if kind == "approval":
        return f"approval.{command['name']}#{ident}"
    return f"{kind}#{ident}"


class History:
    """Appends events with ascending seq, each one second after the previous."""

    def __init__(self, input: Any = None, *, start: datetime = T0) -> None:
        self.events: list[dict[str, Any]] = []
        self._at = start
        self._tokens = 0
        self.add("ExecutionStarted", {"workflow": "wf", "input": input, "spec_hash": "h", "run": 1})

    @property
    def last_seq(self) -> int:
        return int(self.events[-1]["seq"]) if self.events else 0

    def add(self, kind: str, data: dict[str, Any]) -> int:
        seq = self.last_seq + 1
        self._at += timedelta(seconds=1)
        self.events.append({"seq": seq, "type": kind, "at": rfc3339(self._at), "data": data})
        return seq

    def after(self, seq: int) -> list[dict[str, Any]]:
        return [event for event in self.events if event["seq"] > seq]

    def task_started(self) -> tuple[str, int]:
        self._tokens += 1
        token = f"wt-{self._tokens}"
        return token, self.add("WorkflowTaskStarted", {"token": token, "worker_id": "w-1"})

    def task_completed(self, token: str, commands: list[Command]) -> list[Command]:
        """Record ``commands`` as the engine does, each waiting one named; returns them as recorded."""
        named = [{**c, "step": step_name(c)} if "id" in c else dict(c) for c in commands]
        self.add("WorkflowTaskCompleted", {"token": token, "worker_id": "w-1", "commands": named})
        return named

    def task_failed(self, token: str) -> int:
        data = {"token": token, "error_type": "WorkflowTaskError", "message": "boom", "retry_at_ms": 1}
        return self.add("WorkflowTaskFailed", data)

    def step_completed(self, step: str, output: Any) -> int:
        return self.add("StepCompleted", {"step": step, "attempt": 1, "token": "t", "output": output})

    def step_failed(self, step: str, error_type: str, message: str, *, retry_at_ms: int | None = None) -> int:
        data = {"step": step, "attempt": 1, "token": "t", "error_type": error_type, "message": message}
        return self.add("StepFailed", {**data, "retryable": False, "retry_at_ms": retry_at_ms, "continued": False})

    def approval_granted(self, step: str, approver: str, payload: Any) -> int:
        return self.add("ApprovalGranted", {"step": step, "approver": approver, "payload": payload})

    def cancel_requested(self, reason: str) -> int:
        return self.add("ExecutionCancelRequested", {"reason": reason})


Respond = Callable[[Command], tuple[str, dict[str, Any]]]


def default_respond(command: Command) -> tuple[str, dict[str, Any]]:
    """What the engine would record when each waiting command succeeds."""
    kind = command["type"]
    if kind == "step":
        return "StepCompleted", {"output": {"function": command["function"], "args": command["args"]}}
    if kind == "sleep":
        return "StepCompleted", {"output": {"wokeAt": "2026-03-01T13:00:00Z"}}
    if kind == "waitSignal":
        output = {"name": command["name"], "data": {"n": 1}, "sender": "cli", "receivedAt": "2026-03-01T12:30:00Z"}
        return "StepCompleted", {"output": output}
    if kind == "approval":
        return "ApprovalGranted", {"approver": "ann", "payload": {"ok": True}}
    if kind == "child":
        return "StepCompleted", {"output": {"child_of": command["input"]}}
    raise AssertionError(f"no outcome for {command}")


class Simulation:
    """Plays the engine: runs the code as a sticky worker would (one cached replayer fed new events)
    and checks, at every workflow task, that a fresh replay of the whole history issues the same commands."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        input: Any = None,
        execution_id: str = "ex-1",
        respond: Respond = default_respond,
        one_at_a_time: bool = False,
    ) -> None:
        self.definition = WorkflowDefinition(fn.__name__, fn)
        self.history = History(input)
        self.execution_id = execution_id
        self.respond = respond
        self.one_at_a_time = one_at_a_time
        self.issued: list[list[Command]] = []  # per workflow task, as recorded

    def replayer(self) -> Replayer:
        return Replayer(self.definition, execution_id=self.execution_id, workflow="wf")

    def run(self, *, max_tasks: int = 500) -> list[list[Command]]:
        cached = self.replayer()
        outstanding: list[Command] = []
        try:
            for _ in range(max_tasks):
                token, started = self.history.task_started()
                cached.feed(parse_events(self.history.after(cached.last_seq)))
                live = cached.run_live(started)
                fresh = self.replayer()
                try:
                    fresh.feed(parse_events(self.history.events))
                    assert fresh.run_live(started) == live, "a fresh replay disagrees with the cached instance"
                finally:
                    fresh.close()
                recorded = self.history.task_completed(token, live)
                self.issued.append(recorded)
                outstanding += [c for c in recorded if c["type"] in WAITING]
                if recorded and recorded[-1]["type"] in TERMINAL_TYPES:
                    self.history.add(ENDINGS[recorded[-1]["type"]], {})
                    return self.issued
                answer = outstanding[:1] if self.one_at_a_time else list(outstanding)
                if not answer:
                    raise AssertionError(f"the code waits for nothing the engine can answer: {self.issued[-1]}")
                for command in answer:
                    outstanding.remove(command)
                    kind, data = self.respond(command)
                    self.history.add(
                        kind, data if kind == "ExecutionCancelRequested" else {"step": command["step"], **data}
                    )
            raise AssertionError("the workflow did not end")
        finally:
            cached.close()

    @property
    def outcome(self) -> Command:
        return self.issued[-1][-1]

    def all_commands(self) -> list[Command]:
        return [command for task in self.issued for command in task]
