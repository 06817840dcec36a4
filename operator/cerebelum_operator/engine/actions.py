"""Side effects `decide` asks for; the store applies them with the events, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .rates import RateLimit

__all__ = [
    "Action",
    "AddDeadLetter",
    "AdmitFlowSlot",
    "CancelTask",
    "CancelTimer",
    "DeleteTask",
    "FreeFlowSlot",
    "LeaseTask",
    "ReplaceSpec",
    "ResolveDeadLetter",
    "ScheduleTask",
    "SendMessage",
    "StartTimer",
    "WaitForFlowSlot",
]

JSON = Any


@dataclass(frozen=True, slots=True)
class ScheduleTask:
    token: str
    step: str
    attempt: int
    poll: int
    task_queue: str
    arguments: JSON
    visible_at_ms: int
    timeout_ms: int
    lease_ms: int
    heartbeat_required: bool
    sticky_worker_id: str | None
    # Flow control (issue 19), kept with the task in the store. Higher ``priority`` is handed out
    # first; within one priority the dispatcher takes turns between ``flow_key``s (None: the
    # queue's unkeyed tasks, one key of their own), and at most ``key_rate_limit`` tasks of that
    # key start per period.
    priority: int = 0
    flow_key: str | None = None
    key_rate_limit: RateLimit | None = None


@dataclass(frozen=True, slots=True)
class LeaseTask:
    token: str
    worker_id: str
    lease_expires_at_ms: int
    attempt_deadline_ms: int
    last_progress: JSON = None  # the step's previous attempt's last heartbeat progress, for the worker
    run: int = 1  # which run of the step this attempt belongs to (the idempotency key's last part)

    @classmethod
    def now(
        cls, token: str, worker_id: str, *, lease_ms: int, timeout_ms: int, now_ms: int, last_progress: JSON, run: int
    ) -> LeaseTask:
        """A lease granted at ``now_ms``: it lapses after ``lease_ms`` unless renewed, never past the timeout."""
        return cls(
            token,
            worker_id,
            lease_expires_at_ms=now_ms + min(lease_ms, timeout_ms),
            attempt_deadline_ms=now_ms + timeout_ms,
            last_progress=last_progress,
            run=run,
        )


@dataclass(frozen=True, slots=True)
class DeleteTask:
    """The task's outcome is recorded: remove it from the queue."""

    token: str


@dataclass(frozen=True, slots=True)
class CancelTask:
    """Stop the task: drop it if queued; tell its worker at the next heartbeat if running."""

    token: str


@dataclass(frozen=True, slots=True)
class StartTimer:
    timer_id: str
    fire_at_ms: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer_id: str


@dataclass(frozen=True, slots=True)
class ReplaceSpec:
    """The execution runs on this spec from now on: a redrive adopted its Workflow's current one."""

    spec: JSON
    spec_hash: str


@dataclass(frozen=True, slots=True)
class AddDeadLetter:
    dead_letter_id: str
    step: str
    attempt: int
    error: str


@dataclass(frozen=True, slots=True)
class ResolveDeadLetter:
    dead_letter_id: str


@dataclass(frozen=True, slots=True)
class SendMessage:
    """A message to another execution, kept in the outbox with this decision and relayed after it.

    ``kind`` is ``start`` (start ``target`` as a child or the next run: ``body`` says how) or
    ``command`` (a `ChildFinished` or `Cancel` for ``target``). ``seq`` orders the messages of one
    sender: a child's start is relayed before its cancel.
    """

    message_id: str
    kind: str
    target: str
    seq: int
    body: JSON


@dataclass(frozen=True, slots=True)
class WaitForFlowSlot:
    """The execution waits for a slot of its flow key (a row of the store's ``flow_slots``).

    The rows are the one record of who runs and who waits per key, written with the decisions
    that change it, so the admission service (runtime/flow_control.py) rebuilds its book from
    them after a restart and never admits past a limit.
    """

    flow_key: str
    priority: int
    limit: int


@dataclass(frozen=True, slots=True)
class AdmitFlowSlot:
    """The execution was given its slot: it counts against its key's limit until it ends."""


@dataclass(frozen=True, slots=True)
class FreeFlowSlot:
    """The execution ended (or waits no longer): its slot, or its place in line, is given up."""


Action = (
    ScheduleTask
    | LeaseTask
    | DeleteTask
    | CancelTask
    | StartTimer
    | CancelTimer
    | AddDeadLetter
    | ResolveDeadLetter
    | ReplaceSpec
    | SendMessage
    | WaitForFlowSlot
    | AdmitFlowSlot
    | FreeFlowSlot
)
