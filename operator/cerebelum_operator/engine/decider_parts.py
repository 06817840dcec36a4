"""What the decider's construct mixins (`fan_out`, `composition`) may call on the decider.

The mixins hold the rules of one construct family each; `decide._Decider` inherits them all and
implements what is declared here, so each mixin type-checks against one shared declaration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..model import StepConfig, WorkflowDefinition
from . import actions as act
from . import events as ev
from .flow import task_flow
from .state import ExecutionState, LiveItem

if TYPE_CHECKING:
    from .decide import Decision

__all__ = ["DeciderParts"]

JSON = Any


class DeciderParts:
    """The decider's attributes and the methods its mixins share; `decide._Decider` defines them."""

    definition: WorkflowDefinition
    state: ExecutionState
    now: int
    max_task_bytes: int
    max_input_bytes: int
    decision: Decision

    def emit(self, event: ev.Event) -> int:
        raise NotImplementedError

    def do(self, action: act.Action) -> None:
        raise NotImplementedError

    def config(self, step: str) -> StepConfig:
        raise NotImplementedError

    def variables(self, **extra: JSON) -> dict[str, JSON]:
        raise NotImplementedError

    def refuse(self, *, duplicate: bool) -> None:
        raise NotImplementedError

    def park(self, step: str, message: str) -> None:
        raise NotImplementedError

    def fail_execution(self, reason: str, step: str | None) -> None:
        raise NotImplementedError

    def overflow(self, step: str, result: JSON) -> str | None:
        raise NotImplementedError

    def fail_attempt(
        self,
        step: str,
        attempt: int,
        token: str,
        error_type: str,
        message: str,
        retryable: bool,
        *,
        dead_letter: bool = True,
    ) -> None:
        raise NotImplementedError

    def succeed(self, step: str, attempt: int, token: str, output: JSON, *, collected: bool = False) -> None:
        raise NotImplementedError

    def advance(self) -> None:
        raise NotImplementedError

    def record_refused_jumps(self) -> None:
        raise NotImplementedError

    def stop_everything(self) -> None:
        raise NotImplementedError

    def schedule(self, step: str, *, attempt: int, poll: int, visible_at: int) -> None:
        raise NotImplementedError

    def start_timer_step(self, step: str, config: StepConfig) -> None:
        raise NotImplementedError

    def request_approval(self, step: str, kind: str, data: JSON, timeout_ms: int | None, token: str | None) -> None:
        raise NotImplementedError

    def start_signal_wait(self, step: str, config: StepConfig) -> None:
        raise NotImplementedError

    def start_child(self, step: str, config: StepConfig) -> None:
        raise NotImplementedError

    def continue_with(self, step: str | None, input: JSON, *, where: str = "continueAsNew") -> None:
        raise NotImplementedError

    def schedule_item(self, step: str, config: StepConfig, item: int, live: LiveItem) -> bool:
        raise NotImplementedError

    def code_advance(self) -> None:
        raise NotImplementedError

    def task_flow(self, *, rate_limited: bool = True) -> dict[str, Any]:
        """The flow-control fields of a ScheduleTask (priority, flow_key, key_rate_limit)."""
        flow = task_flow(self.definition, self.state, rate_limited=rate_limited)
        return {"priority": flow.priority, "flow_key": flow.flow_key, "key_rate_limit": flow.key_rate_limit}
