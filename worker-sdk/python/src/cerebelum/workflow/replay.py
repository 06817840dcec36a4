"""Drives workflow code through a history, activation by activation, checking it issues what was recorded.

The same :class:`Replayer` serves a worker (a fresh replay, or new events for a cached instance,
then the live activation) and tools (:func:`replay`, ``cerebelum replay``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cerebelum.workflow.commands import TERMINAL_TYPES, describe, first_difference
from cerebelum.workflow.definition import WorkflowDefinition, WorkflowFunction, workflow_name
from cerebelum.workflow.errors import NonDeterminismError, WorkflowTaskError
from cerebelum.workflow.history import Event, HistoryInput, code_time, parse_events
from cerebelum.workflow.instance import CANCEL_REQUESTED, WorkflowInstance
from cerebelum.workflow.loop import DEFAULT_MAX_CALLBACKS

__all__ = ["ReplayResult", "Replayer", "StaleInstanceError", "replay"]

_OUTCOMES = frozenset({"StepCompleted", "ApprovalGranted", CANCEL_REQUESTED})
_ENDINGS = {
    "ExecutionSucceeded": "complete",
    "ExecutionFailed": "fail",
    "ExecutionContinuedAsNew": "continueAsNew",
    "ExecutionCancelled": "cancelled",
}


class StaleInstanceError(WorkflowTaskError):
    """The history disagrees with what this instance sent (its commands were refused or superseded):
    the instance must be dropped and the history replayed from the start."""


@dataclass(frozen=True, slots=True)
class _Activation:
    seq: int
    token: str
    at: datetime
    pending: int  # how many pending outcomes it resolves (those before its WorkflowTaskStarted)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What :func:`replay` checked.

    ``commands``: the recorded commands the code issued again, in order; ``activations``: how many
    activations ran; ``outcome``: the command that ended the code (``complete``/``fail``/...), ``None``
    while it had not ended; ``ended_by``: the history's end event (``ExecutionSucceeded``, ...), if any;
    ``open_task``: the seq of a last ``WorkflowTaskStarted`` without its outcome (not run), if any.
    """

    commands: tuple[dict[str, Any], ...]
    activations: int
    outcome: dict[str, Any] | None
    ended_by: str | None
    open_task: int | None


class Replayer:
    """Feeds history events to a workflow instance as the protocol's "Activations and replay" says."""

    def __init__(
        self,
        definition: WorkflowDefinition,
        *,
        execution_id: str,
        workflow: str,
        max_callbacks: int = DEFAULT_MAX_CALLBACKS,
    ) -> None:
        self.definition = definition
        self.execution_id = execution_id
        self.workflow = workflow
        self.max_callbacks = max_callbacks
        self.instance: WorkflowInstance | None = None
        self.last_seq = 0
        """The last event seq this replayer has seen."""
        self.checked: list[dict[str, Any]] = []
        self.activations = 0
        self.outcome: dict[str, Any] | None = None
        self.end_event: Event | None = None
        self._pending: list[Event] = []
        self._open: _Activation | None = None
        self._sent: tuple[str, list[dict[str, Any]]] | None = None  # the live activation's token and commands
        self._speculated: tuple[str, list[dict[str, Any]]] | None = None  # a continuation's step and commands

    @property
    def open_task(self) -> int | None:
        return None if self._open is None else self._open.seq

    def feed(self, events: list[Event]) -> None:
        """Walk ``events``: replay each completed activation and check its commands."""
        for event in events:
            if event.seq <= self.last_seq:
                continue  # already seen (pages may overlap)
            self.last_seq = event.seq
            self._feed(event)

    def run_live(self, started_seq: int) -> list[dict[str, Any]]:
        """Run the activation of the ``WorkflowTaskStarted`` at ``started_seq``; the commands to send."""
        activation = self._open
        if activation is None or activation.seq != started_seq:
            raise WorkflowTaskError(
                f"the history does not end with this task's WorkflowTaskStarted (seq {started_seq});"
                f" it ends at seq {self.last_seq}"
            )
        self._open = None
        commands = self._activate(activation, expected=None)
        self._sent = (activation.token, commands)
        return commands

    @property
    def can_continue(self) -> bool:
        """Whether the code has seen all it was given and waits: it may run on a step's result now."""
        instance = self.instance
        return (
            instance is not None
            and not instance.finished
            and self._open is None
            and not self._pending
            and self._speculated is None
        )

    def continue_with(self, *, step: str, output: Any, now: datetime) -> list[dict[str, Any]]:
        """Run the code on step ``step``'s result before the engine recorded it; the commands it issued.

        The engine records them as the next workflow task if that result is all the code had not
        seen (:meth:`adopt`); otherwise this instance ran ahead of the history and must be dropped.
        """
        if not self.can_continue or self.instance is None:
            raise WorkflowTaskError("this instance has events to see first: it cannot run on a step's result")
        outcome = Event(0, "StepCompleted", now, {"step": step, "output": output})
        commands = self.instance.activate(now=now, outcomes=[outcome], expected=None)
        self._speculated = (step, commands)
        return commands

    def adopt(self, events: list[Event], started_seq: int) -> None:
        """The engine recorded the continuation as the workflow task started at ``started_seq``; ``events``
        are the history after :attr:`last_seq` up to it. Raises :class:`StaleInstanceError` when they
        are not what the continuation ran on (the instance must then be dropped)."""
        speculated, self._speculated = self._speculated, None
        if speculated is None:
            raise StaleInstanceError("no continuation ran on this instance")
        self.feed(events)
        activation = self._open
        if activation is None or activation.seq != started_seq or self.last_seq != started_seq:
            raise StaleInstanceError(
                f"the continuation's events do not end with its WorkflowTaskStarted (seq {started_seq})"
            )
        outcomes = self._pending[: activation.pending]
        if (
            len(outcomes) != 1
            or outcomes[0].type != "StepCompleted"
            or outcomes[0].data.get("step") != speculated[0]
            or len(self._pending) != activation.pending
        ):
            raise StaleInstanceError(f"the workflow task at seq {started_seq} shows other news than the step's result")
        del self._pending[: activation.pending]
        self._open = None
        commands = speculated[1]
        self.activations += 1
        if commands and commands[-1].get("type") in TERMINAL_TYPES:
            self.outcome = commands[-1]
        self._sent = (activation.token, commands)

    def close(self) -> None:
        if self.instance is not None:
            self.instance.close()

    # -- events -----------------------------------------------------------------------------

    def _feed(self, event: Event) -> None:
        kind, data = event.type, event.data
        if kind == "ExecutionStarted":
            if self.instance is not None:
                raise WorkflowTaskError(f"history: a second ExecutionStarted at seq {event.seq}")
            self.instance = WorkflowInstance(
                self.definition,
                execution_id=self.execution_id,
                workflow=self.workflow,
                input=data.get("input"),
                max_callbacks=self.max_callbacks,
            )
        elif kind in _OUTCOMES:
            self._pending.append(event)
        elif kind == "StepFailed":
            if data.get("retry_at_ms") is None and not data.get("continued"):
                self._pending.append(event)  # final; a retried failure is the engine's business
        elif kind == "WorkflowTaskStarted":
            if self._sent is not None:
                raise StaleInstanceError(
                    f"a workflow task started at seq {event.seq} before the one this worker answered was recorded"
                )
            # A task started before and never finished (its lease ran out) produced nothing: replaced.
            self._open = _Activation(event.seq, str(data.get("token", "")), code_time(event), len(self._pending))
        elif kind == "WorkflowTaskCompleted":
            self._completed(event)
        elif kind == "WorkflowTaskFailed":
            token = str(data.get("token", ""))
            if self._sent is not None and self._sent[0] == token:
                raise StaleInstanceError(
                    f"the engine refused this worker's commands (WorkflowTaskFailed, seq {event.seq})"
                )
            if self._open is not None and self._open.token == token:
                self._open = None  # its outcomes stay pending for the next activation
        elif kind in _ENDINGS:
            self.end_event = event

    def _completed(self, event: Event) -> None:
        token = str(event.data.get("token", ""))
        recorded = _commands_of(event)
        if self._sent is not None and self._sent[0] == token:
            sent = self._sent[1]
            self._sent = None
            if first_difference(sent, recorded) is not None:
                raise StaleInstanceError(f"the engine recorded other commands than this worker sent (seq {event.seq})")
            self._learn(recorded)
            self.checked.extend(recorded)
            return
        activation = self._open
        if activation is None or activation.token != token:
            raise WorkflowTaskError(
                f"history: {event.type} at seq {event.seq} completes no workflow task started before it"
            )
        self._open = None
        issued = self._activate(activation, expected=recorded)
        index = first_difference(issued, recorded)
        if index is not None:
            mine = issued[index] if index < len(issued) else None
            theirs = recorded[index] if index < len(recorded) else None
            raise NonDeterminismError(
                f"non-determinism: {event.type} (seq {event.seq}), the activation started at seq {activation.seq},"
                f" recorded {describe(theirs)} as command {index + 1} but the code issued {describe(mine)}"
                " (did the code change? guard new code paths with wf.patched)",
                event_seq=event.seq,
                event_type=event.type,
                issued=mine,
                recorded=theirs,
            )
        self._learn(recorded)
        self.checked.extend(recorded)

    def _activate(self, activation: _Activation, *, expected: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        if self.instance is None:
            raise WorkflowTaskError(f"history: WorkflowTaskStarted (seq {activation.seq}) before ExecutionStarted")
        outcomes = self._pending[: activation.pending]
        del self._pending[: activation.pending]
        commands = self.instance.activate(now=activation.at, outcomes=outcomes, expected=expected)
        self.activations += 1
        if commands and commands[-1].get("type") in TERMINAL_TYPES:
            self.outcome = commands[-1]
        return commands

    def _learn(self, recorded: list[dict[str, Any]]) -> None:
        if self.instance is not None:
            self.instance.learn(recorded)


def _commands_of(event: Event) -> list[dict[str, Any]]:
    commands = event.data.get("commands") or []
    if not isinstance(commands, list) or not all(isinstance(c, dict) for c in commands):
        raise WorkflowTaskError(f"history: the commands of {event.type} (seq {event.seq}) are not a list of objects")
    return commands


def replay(
    function: WorkflowFunction | Callable[..., Any],
    history: HistoryInput,
    *,
    execution_id: str = "",
    workflow: str | None = None,
    max_callbacks: int = DEFAULT_MAX_CALLBACKS,
) -> ReplayResult:
    """Replay ``history`` (an execution's events) through ``function``; raises :class:`NonDeterminismError`.

    Pass the execution's id as ``execution_id`` when the code uses ``wf.random()`` or ``wf.uuid4()``:
    they are seeded with it. A last workflow task still running is not run (nothing to compare it with).
    """
    definition = WorkflowDefinition(workflow_name(function), function)
    replayer = Replayer(
        definition, execution_id=execution_id, workflow=workflow or definition.name, max_callbacks=max_callbacks
    )
    try:
        replayer.feed(parse_events(history))
    finally:
        replayer.close()
    end = replayer.end_event
    outcome = replayer.outcome
    if end is not None and outcome is not None and _ENDINGS[end.type] != outcome.get("type"):
        raise NonDeterminismError(
            f"non-determinism: the execution ended with {end.type} (seq {end.seq})"
            f" but the code ended with {describe(outcome)}",
            event_seq=end.seq,
            event_type=end.type,
            issued=outcome,
            recorded=None,
        )
    return ReplayResult(
        commands=tuple(replayer.checked),
        activations=replayer.activations,
        outcome=outcome,
        ended_by=end.type if end is not None else None,
        open_task=replayer.open_task,
    )
