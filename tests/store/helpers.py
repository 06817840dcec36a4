"""Building store inputs the way the engine does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cerebelum_operator.engine import events as ev
from cerebelum_operator.engine.actions import Action, ScheduleTask
from cerebelum_operator.store import EventStore, ExecutionSummary, NewExecution

__all__ = ["Appender"]


class Appender:
    """Writes histories the way the engine does, tracking each execution's last seq."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.last_seq: dict[str, int] = {}

    def start(
        self,
        execution_id: str,
        *,
        workflow: str = "orders",
        at_ms: int = 1_000,
        input: Any = None,
        actions: Sequence[Action] = (),
        phase: str = "Running",
        labels: dict[str, str] | None = None,
        shard: int | None = None,
    ) -> None:
        started = ev.ExecutionStarted(workflow=workflow, input=input, spec_hash="h1")
        self.store.append(
            execution_id,
            expected_seq=0,
            events=[ev.RecordedEvent(1, at_ms, started)],
            actions=actions,
            summary=self.summary(phase=phase, at_ms=at_ms),
            new_execution=NewExecution(
                workflow=workflow,
                spec={"steps": [{"name": "a"}]},
                spec_hash="h1",
                input=input,
                labels=labels or {},
                shard=shard,
            ),
        )
        self.last_seq[execution_id] = 1

    def append(
        self,
        execution_id: str,
        *events: ev.Event,
        actions: Sequence[Action] = (),
        at_ms: int = 2_000,
        **summary_fields: Any,
    ) -> None:
        seq = self.last_seq[execution_id]
        self.store.append(
            execution_id,
            expected_seq=seq,
            events=[ev.RecordedEvent(seq + i, at_ms, e) for i, e in enumerate(events, start=1)],
            actions=actions,
            summary=self.summary(at_ms=at_ms, **summary_fields),
        )
        self.last_seq[execution_id] = seq + len(events)

    @staticmethod
    def summary(
        *,
        phase: str = "Running",
        at_ms: int = 2_000,
        current_steps: Sequence[str] = (),
        output: Any = None,
        error: str | None = None,
        wake_at_ms: int | None = None,
    ) -> ExecutionSummary:
        return ExecutionSummary(
            phase=phase,
            current_steps=list(current_steps),
            output=output,
            error=error,
            wake_at_ms=wake_at_ms,
            updated_at_ms=at_ms,
        )

    @staticmethod
    def schedule(
        token: str, *, step: str = "a", task_queue: str = "default", visible_at_ms: int = 2_000
    ) -> ScheduleTask:
        return ScheduleTask(
            token=token,
            step=step,
            attempt=1,
            poll=0,
            task_queue=task_queue,
            arguments={"n": 1, "tags": ["x", "y"]},
            visible_at_ms=visible_at_ms,
            timeout_ms=30_000,
            lease_ms=10_000,
            heartbeat_required=True,
            sticky_worker_id=None,
        )
