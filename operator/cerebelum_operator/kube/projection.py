"""The Execution's status: a bounded projection of the engine's state and the history's tail.

Every list is capped and every free-text field cut, so the object stays small however long the
history grows; the full history and the full output stay in the store (`cerebelum history`).

What `kubectl describe` shows must not mislead: a step's `error` is there only while the step is
Failed; an earlier attempt's error on a step that ran again (Retrying, Running, Succeeded) is its
`previousAttemptError`. Every condition says in words where the execution stands.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..engine import ExecutionState
from ..engine.events import RecordedEvent
from ..engine.state import ChildLink, ExecutionPhase, StepPhase, StepState
from ..runtime.engine_service import LiveStep
from .names import child_object_name

__all__ = [
    "ProjectionLimits",
    "condition",
    "duration_text",
    "merge_conditions",
    "project_execution",
    "recent_event",
    "rfc3339",
]

JSON = Any


@dataclass(frozen=True, kw_only=True)
class ProjectionLimits:
    """Caps that keep an Execution far below etcd's object size limit (1.5 MiB)."""

    recent_events: int = 10
    steps: int = 64
    output_bytes: int = 4096
    # Texts are cut to these many bytes of JSON in UTF-8 (characters, for plain ASCII).
    error_chars: int = 1024
    step_error_chars: int = 512
    current_step_chars: int = 256
    progress_chars: int = 512
    children: int = 8  # the running ones first, then the latest that ended
    # The whole status, as JSON: fewer steps are listed (the settled ones go first) to stay within.
    # With every other field at its own cap the rest takes some 10 KiB, so steps always get room.
    status_bytes: int = 16 * 1024


def rfc3339(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def condition(
    type_: str, status: str, reason: str, message: str = "", *, now_ms: int, generation: int | None = None
) -> dict[str, JSON]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": rfc3339(now_ms),
        "observedGeneration": generation,
    }


def merge_conditions(previous: list[dict[str, JSON]], updates: list[dict[str, JSON]]) -> list[dict[str, JSON]]:
    """Apply updates by type, keeping lastTransitionTime when a condition's status did not change."""
    merged = {c["type"]: c for c in previous}
    for update in updates:
        old = merged.get(update["type"])
        if old is not None and old.get("status") == update["status"]:
            update = {**update, "lastTransitionTime": old.get("lastTransitionTime", update["lastTransitionTime"])}
        merged[update["type"]] = update
    return list(merged.values())


def _cut(text: str | None, limit: int) -> str | None:
    """``text`` within ``limit`` bytes of JSON as the API server stores it (UTF-8: a character
    JSON escapes, or that is not ASCII, counts for 2 to 6), cut with a "…" when it is longer: the
    status's size is bounded in bytes whatever the text."""
    if text is None or _escaped(text) <= limit:
        return text
    low, high = 0, min(len(text), limit)  # the longest prefix that fits with the marker
    while low < high:
        middle = (low + high + 1) // 2
        if _escaped(text[:middle]) + _escaped("…") <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low] + "…"


def _escaped(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def _current_step(names: list[str], limit: int) -> str | None:
    """The running steps for the printer column; a wide parallel group ends in "(+N more)"."""
    shown: list[str] = []
    for index, name in enumerate(names):
        more = f" (+{len(names) - index} more)"
        if len(", ".join([*shown, name])) + (len(more) if index + 1 < len(names) else 0) > limit:
            return ", ".join(shown) + more
        shown.append(name)
    return ", ".join(shown) or None


def _step_status(name: str, step: StepState, live: LiveStep | None, limits: ProjectionLimits) -> dict[str, JSON]:
    failed = step.phase == StepPhase.FAILED
    error = _cut(step.last_error, limits.step_error_chars)
    progress = None if live is None or live.progress is None else json.dumps(live.progress, separators=(",", ":"))
    return {
        "name": name,
        "phase": step.phase.value,
        "attempts": max(step.total_attempts, step.attempt),
        "startedAt": rfc3339(step.started_at_ms),
        "finishedAt": rfc3339(step.finished_at_ms),
        "error": error if failed else None,
        "previousAttemptError": None if failed else error,
        "progress": _cut(progress, limits.progress_chars),
    }


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def duration_text(ms: int) -> str:
    """A short human duration: "850 ms", "4.2 s", "3 min 20 s", "2 h 5 min", "3 d 4 h"."""
    ms = max(0, ms)
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    seconds = ms // 1000
    for unit, size, smaller, smaller_size in (("d", 86_400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if seconds >= size:
            rest = (seconds % size) // smaller_size
            return f"{seconds // size} {unit}" + (f" {rest} {smaller}" if rest else "")
    raise AssertionError("unreachable")  # pragma: no cover


def _where_it_stands(state: ExecutionState, phase: ExecutionPhase, limits: ProjectionLimits) -> str:
    """The Succeeded condition's message: how it ended, or what it does or waits for.

    While it runs the message changes with the phase only, not with each step (`currentStep` has
    those), so a step that finishes does not also rewrite the conditions.
    """
    if phase == ExecutionPhase.SUCCEEDED:
        done = sum(1 for step in state.steps.values() if step.phase == StepPhase.SUCCEEDED)
        took = duration_text(state.updated_at_ms - state.created_at_ms)
        return f"finished after {_plural(done, 'step')} in {took}{_loops_cut(state)}"
    if phase.terminal:
        return _cut(state.error, limits.error_chars) or phase.value.lower()
    if phase == ExecutionPhase.PENDING:
        return "waiting for the engine to start it"
    if state.ending is not None:  # its compensation and finally steps run before it ends
        return (
            _cut(
                f"ending as {state.ending.outcome.value}: running its compensation and finally steps",
                limits.error_chars,
            )
            or ""
        )
    if phase in (ExecutionPhase.PAUSED, ExecutionPhase.QUEUED):
        why = "; ".join(f"{hold.reason}" + (f" (by {hold.by})" if hold.by else "") for hold in state.holds.values())
        return _cut(f"{phase.value.lower()}: {why}", limits.error_chars) or phase.value.lower()
    if phase == ExecutionPhase.WAITING_FOR_APPROVAL:
        names = _current_step(list(state.approvals), limits.current_step_chars)
        return f"waiting for an Approval of step {names}"
    if phase == ExecutionPhase.SLEEPING:
        return f"sleeping until {rfc3339(state.wake_at_ms())}"
    if phase == ExecutionPhase.WAITING_FOR_SIGNAL:
        names = _current_step(sorted({wait.name for wait in state.signal_waits.values()}), limits.current_step_chars)
        return f"waiting for a Signal named {names}"
    return "running"


def _loops_cut(state: ExecutionState) -> str:
    """ "; loop branch.b[0] cut at maxIterations 2" for loops cut at their bound (their events may
    have scrolled out of recentEvents), the first three named."""
    if not state.jump_limits:
        return ""
    named = [f"{rule} cut at maxIterations {cut.bound}" for rule, cut in list(state.jump_limits.items())[:3]]
    more = len(state.jump_limits) - len(named)
    return "; loop " + ", ".join(named) + (f" and {more} more" if more else "")


_SUCCEEDED_CONDITION = {
    ExecutionPhase.SUCCEEDED: ("True", "Succeeded"),
    ExecutionPhase.FAILED: ("False", "Failed"),
    ExecutionPhase.CANCELLED: ("False", "Cancelled"),
}


def _children(state: ExecutionState, object_name: str | None, cap: int) -> list[dict[str, JSON]]:
    """The running children, then the latest that ended, up to `cap`, in the order they started."""
    live = sorted(state.live_children.values())
    chosen = set(live[-cap:])
    for index in range(len(state.children) - 1, -1, -1):
        if len(chosen) >= cap:
            break
        chosen.add(index)
    return [_child(state.children[index], object_name) for index in sorted(chosen)]


def _child(link: ChildLink, object_name: str | None) -> dict[str, JSON]:
    return {
        "step": link.step,
        "name": child_object_name(object_name, link.step, link.child_id) if object_name else "",
        "executionId": link.child_id,
        "workflow": link.workflow,
        "phase": link.phase,
    }


def recent_event(recorded: RecordedEvent) -> dict[str, JSON]:
    """An event as `recentEvents` lists it: its seq, time, kind and step, never its payload. The
    status writer keeps the last few of each execution it follows in this form (`status_writer`)."""
    return {
        "seq": recorded.seq,
        "at": rfc3339(recorded.at_ms),
        "type": recorded.event.kind,
        "step": getattr(recorded.event, "step", None),
    }


def project_execution(
    state: ExecutionState,
    *,
    recent: Sequence[Mapping[str, JSON]],
    previous_conditions: list[dict[str, JSON]],
    generation: int | None,
    now_ms: int,
    limits: ProjectionLimits = ProjectionLimits(),
    live: Mapping[str, LiveStep] | None = None,
    object_name: str | None = None,
    parent_name: str | None = None,
) -> dict[str, JSON]:
    """The status for `state`; `recent` is the history's tail as `recent_event`s (the last has seq == last_seq).

    `live` is what the dispatcher knows now of in-flight steps (heartbeat progress, why a task
    waits), from `EngineService.live_steps`. `object_name` is the Execution's own name (its
    children's objects are named from it); `parent_name` the owner Execution of a child's object.
    `state` is a continue-as-new chain's latest run: `executionId` stays the chain's first run.
    """
    phase = state.display_phase()
    steps = [_step_status(name, step, (live or {}).get(name), limits) for name, step in state.steps.items()]
    omitted = max(0, len(steps) - limits.steps)
    pending = next(iter(state.approvals.items()), None)
    terminal_status, terminal_reason = _SUCCEEDED_CONDITION.get(state.phase, ("Unknown", phase.value))
    conditions = merge_conditions(
        previous_conditions,
        [
            condition("Accepted", "True", "Started", "the engine started the execution", now_ms=now_ms),
            condition(
                "Succeeded",
                terminal_status,
                terminal_reason,
                _where_it_stands(state, phase, limits),
                now_ms=now_ms,
                generation=generation,
            ),
        ],
    )
    children = _children(state, object_name, limits.children)
    status: dict[str, JSON] = {
        "executionId": state.chain_id,
        "run": state.run,
        "runId": state.execution_id,
        "phase": phase.value,
        "currentStep": _current_step(state.current_steps(), limits.current_step_chars),
        "startedAt": rfc3339(state.created_at_ms or None),
        "finishedAt": rfc3339(state.updated_at_ms) if state.phase.terminal else None,
        "wakeAt": rfc3339(state.wake_at_ms()),
        "pendingApproval": (
            {
                "step": pending[0],
                "requestedAt": rfc3339(pending[1].requested_at_ms),
                "timeoutAt": rfc3339(pending[1].timeout_at_ms),
            }
            if pending is not None
            else None
        ),
        "steps": steps[-limits.steps :] if omitted else steps,
        "stepsOmitted": omitted or None,
        "recentEvents": [dict(entry) for entry in recent[-limits.recent_events :]],
        "eventCount": state.last_seq,
        "error": _cut(state.error, limits.error_chars),
        "workflowTaskError": _cut(state.workflow_task_error, limits.error_chars),
        "parent": (
            {"name": parent_name, "executionId": state.parent_id, "step": state.parent_step}
            if state.parent_id is not None
            else None
        ),
        "children": children,
        "childCount": len(state.children) or None,
        "childrenOmitted": (len(state.children) - len(children)) or None,
        "conditions": conditions,
        "observedGeneration": generation,
    }
    status.update(_output_fields(state.output, limits.output_bytes))
    return _within(status, limits.status_bytes)


def _size(value: JSON) -> int:
    """Bytes of JSON as UTF-8, measured with json's spaces: at least what the API server stores."""
    return len(json.dumps(value, ensure_ascii=False).encode())


def _within(status: dict[str, JSON], budget: int) -> dict[str, JSON]:
    """The status with steps, then children, left out until its JSON fits ``budget`` bytes:
    settled ones first, oldest first, so what failed, runs or waits stays in view."""
    total = _size(status)
    if total <= budget:
        return status
    status = dict(status)
    for field, omitted, settled in (
        ("steps", "stepsOmitted", ("Succeeded", "Skipped")),
        ("children", "childrenOmitted", ("Succeeded", "Abandoned", "Cancelled")),
    ):
        entries: list[dict[str, JSON]] = status[field]
        sizes = [_size(entry) + 1 for entry in entries]
        order = sorted(range(len(entries)), key=lambda i: (entries[i]["phase"] not in settled, i))
        dropped: set[int] = set()
        for index in order:
            if total <= budget:
                break
            dropped.add(index)
            total -= sizes[index]
        status[field] = [entry for i, entry in enumerate(entries) if i not in dropped]
        status[omitted] = (status[omitted] or 0) + len(dropped) or None
    return status


def _output_fields(output: JSON, cap: int) -> dict[str, JSON]:
    if output is None:
        return {"output": None, "outputTruncated": None, "outputBytes": None}
    size = len(json.dumps(output, separators=(",", ":")).encode())
    if size > cap:
        return {"output": None, "outputTruncated": True, "outputBytes": size}
    return {"output": output, "outputTruncated": None, "outputBytes": size}
