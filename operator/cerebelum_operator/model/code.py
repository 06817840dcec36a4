"""Code workflows in the model: the ``code`` spec checked, and step configs made from commands.

A code workflow has no timeline: its worker-side function issues commands (docs/
code-workflows-protocol.md). Each command that waits for something becomes a step of the
execution, with a `StepConfig` built here from the command's options and the workflow's
defaults, so retries, timeouts, leases, approvals, signals and children run on the machinery
YAML steps use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import pydantic
from pydantic import Field

from .composition import ChildStart, SignalWait
from .durations import parse_duration
from .spec import CodeSpec, Duration, QueueName, RetryPolicy, StepDefaults, WorkflowSpec, _Spec

if TYPE_CHECKING:
    from .compile import StepConfig

__all__ = ["CodeCommandInvalid", "CodeConfig", "CodeStepOptions", "check_code_spec", "code_step_config"]

JSON = Any


class CodeCommandInvalid(ValueError):
    """A command's options cannot make a step: the message names the option."""


class CodeStepOptions(_Spec):
    """What a ``step`` command may set; unset options come from the workflow's ``defaults``."""

    task_queue: QueueName | None = None
    timeout: Duration | None = None
    heartbeat_timeout: Duration | None = None
    schedule_to_start_timeout: Duration | None = None
    retry: RetryPolicy | None = Field(default=None, description="Replaces defaults.retry whole (not merged).")


@dataclass(frozen=True, slots=True)
class CodeConfig:
    """A code workflow's function, the queue of its workflow tasks, and its steps' defaults."""

    function: str
    task_queue: str
    defaults: StepDefaults
    step_queue: str  # the steps' queue when a command names none: the workflow's taskQueue


def check_code_spec(spec: WorkflowSpec, problem: Callable[[str, str], None]) -> CodeConfig | None:
    """The code config, or None for a timeline workflow; names what a code workflow cannot honour."""
    code: CodeSpec | None = spec.code
    if code is None:
        if not spec.timeline:
            problem("timeline", "a workflow needs a timeline of at least one step, or `code` naming its function")
        return None
    if spec.timeline:
        problem("code", "a workflow has a timeline or code, not both")
    refused = {
        "steps": spec.steps,
        "diverge": spec.diverge,
        "branch": spec.branch,
        "output": spec.output,
        "finally": spec.finally_,
        "vars": spec.vars,
    }
    for field_name, value in refused.items():
        if value:
            problem(field_name, f"a code workflow's code does this itself: {field_name} is for timeline workflows")
    return CodeConfig(code.function, code.task_queue or spec.task_queue, spec.defaults, spec.task_queue)


def code_step_config(code: CodeConfig, name: str, kind: str, command: Mapping[str, JSON]) -> StepConfig:
    """The step a command runs as; raises CodeCommandInvalid naming a bad option."""
    from .compile import StepConfig, retry_config  # compile imports this module

    defaults = code.defaults
    heartbeat = defaults.heartbeat_timeout
    base = StepConfig(
        name=name,
        position=-1,
        task_queue=code.step_queue,
        timeout_ms=parse_duration(defaults.timeout),
        lease_ms=parse_duration(heartbeat or defaults.lease),
        heartbeat_required=heartbeat is not None,
        retry=retry_config(defaults.retry),
    )
    if kind == "step":
        try:
            options = CodeStepOptions.model_validate(command.get("options") or {})
        except pydantic.ValidationError as exc:
            raise CodeCommandInvalid(_first_error(exc, "options")) from None
        heartbeat = options.heartbeat_timeout or heartbeat
        to_start = options.schedule_to_start_timeout or defaults.schedule_to_start_timeout
        return replace(
            base,
            task_queue=options.task_queue or code.step_queue,
            timeout_ms=parse_duration(options.timeout) if options.timeout else base.timeout_ms,
            lease_ms=parse_duration(heartbeat or defaults.lease),
            heartbeat_required=heartbeat is not None,
            retry=retry_config(options.retry) if options.retry else base.retry,
            schedule_to_start_ms=parse_duration(to_start) if to_start else None,
            function=str(command["function"]),
        )
    # The engine's own steps: one attempt each (a timeout or a rejection is the code's to handle).
    engine_step = replace(base, retry=retry_config(RetryPolicy(max_attempts=1)), heartbeat_required=False)
    timeout = _duration(command.get("timeout"), "timeout")
    if kind == "sleep":
        duration = _duration(command.get("duration"), "duration")
        if duration is None:
            raise CodeCommandInvalid("duration: a sleep needs one")
        return replace(engine_step, timer_duration_ms=duration)
    if kind == "approval":
        return replace(engine_step, approval_kind=str(command.get("kind") or "approval"), approval_timeout_ms=timeout)
    if kind == "waitSignal":
        return replace(engine_step, signal=SignalWait(str(command["name"]), timeout))
    if kind != "child":
        raise CodeCommandInvalid(f"a {kind!r} command runs no step")
    on_cancel = command.get("onParentCancel") or "cancel"
    policy: Literal["cancel", "abandon"] = "abandon" if on_cancel == "abandon" else "cancel"
    if on_cancel != policy:
        raise CodeCommandInvalid(f"onParentCancel: {on_cancel!r} is neither 'cancel' nor 'abandon'")
    return replace(engine_step, child=ChildStart(str(command["workflow"]), None, policy))


def _duration(value: JSON, field_name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CodeCommandInvalid(f"{field_name}: a duration is text such as '5s' or '1500ms', not {value!r}")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise CodeCommandInvalid(f"{field_name}: {exc}") from None


def _first_error(exc: pydantic.ValidationError, where: str) -> str:
    error = exc.errors()[0]
    path = ".".join(str(part) for part in (where, *error["loc"]))
    return f"{path}: {error['msg']}"
