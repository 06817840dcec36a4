"""An execution's flow key and priority, from its input (issue 19, flow control).

Pure and deterministic: `decide` records them once at the start (`FlowAssigned`), and the
admission service and the dispatcher read them from there. Both are CEL over the input only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..model import InputInvalid, WorkflowDefinition
from .expressions import ExpressionError, evaluate
from .rates import RateLimit
from .state import ExecutionState

__all__ = ["CONCURRENCY", "MAX_FLOW_KEY", "MAX_PRIORITY", "Flow", "TaskFlow", "flow_of", "queued_reason", "task_flow"]

MAX_FLOW_KEY = 256  # characters: a key is stored with every slot and task of its executions
MAX_PRIORITY = 1_000
CONCURRENCY = "concurrency"  # the source of the hold on an execution waiting for a slot


@dataclass(frozen=True, slots=True)
class Flow:
    key: str
    priority: int


def flow_of(definition: WorkflowDefinition, input: Any) -> Flow | None:
    """The execution's key and priority; None when the workflow has no flow control.

    Raises `InputInvalid` naming the expression when one fails or gives a value it cannot use:
    the start is refused, as for an input its schema refuses.
    """
    flow = definition.flow_control
    if flow is None:
        return None
    seen = {"input": input}
    key = ""
    if flow.key is not None:
        value = _run(flow.key, seen, "flowControl.key")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InputInvalid(f"flowControl.key: gave {_kind(value)}; a key must be a string or a number")
        key = value if isinstance(value, str) else json.dumps(value)
        if len(key) > MAX_FLOW_KEY:
            raise InputInvalid(f"flowControl.key: gave {len(key):,} characters, over the limit of {MAX_FLOW_KEY}")
    priority = 0
    if flow.priority is not None:
        value = _run(flow.priority, seen, "flowControl.priority")
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_PRIORITY:
            raise InputInvalid(
                f"flowControl.priority: gave {value!r}; a priority is an integer from {-MAX_PRIORITY} to {MAX_PRIORITY}"
            )
        priority = value
    return Flow(key, priority)


@dataclass(frozen=True, slots=True)
class TaskFlow:
    """What a task carries for the dispatcher's ordering and limits (`actions.ScheduleTask`)."""

    priority: int = 0
    flow_key: str | None = None
    key_rate_limit: RateLimit | None = None


NO_FLOW = TaskFlow()


def task_flow(definition: WorkflowDefinition, state: ExecutionState, *, rate_limited: bool = True) -> TaskFlow:
    """The execution's priority, its key (scoped by its workflow: keys of two workflows never share a
    turn or a window) and the key's rate limit, for its tasks; ``rate_limited``: False for a code
    workflow's workflow tasks, which orchestrate and do no work of the key."""
    flow = definition.flow_control
    if flow is None or state.flow_key is None:
        return NO_FLOW
    rate = flow.rate_limit
    return TaskFlow(
        priority=state.priority,
        flow_key=f"{state.workflow}/{state.flow_key}",
        key_rate_limit=RateLimit(*rate) if rate is not None and rate_limited else None,
    )


def queued_reason(key: str, limit: int) -> str:
    """What a waiting execution says (its hold's reason, shown with phase Queued)."""
    of = f"key {key!r}" if key else "the workflow"
    running = "1 execution runs" if limit == 1 else f"{limit} executions run"
    return f"waiting for a slot: at most {running} at once for {of}"


def _run(program: Any, seen: dict[str, Any], where: str) -> Any:
    try:
        return evaluate(program, seen, where=where)
    except ExpressionError as exc:
        raise InputInvalid(str(exc)) from None


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"
