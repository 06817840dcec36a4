"""What a task carries to its worker: a pure function `decide` uses when it schedules one."""

from __future__ import annotations

from typing import Any

from ..model import StepConfig, WorkflowDefinition, limits
from .expressions import evaluate, to_json
from .state import ExecutionState

__all__ = ["ARGUMENTS_TOO_LARGE", "task_arguments"]

# The error type of a step (or item) whose result would make what a task carries too large.
ARGUMENTS_TOO_LARGE = "ArgumentsTooLarge"

# Room left beside the rest of a task for the outcome's other fields and the protocol.
_OUTCOME_MARGIN = 16 * 1024


def task_arguments(
    definition: WorkflowDefinition,
    state: ExecutionState,
    config: StepConfig,
    variables: dict[str, Any],
    *,
    max_task_bytes: int,
) -> dict[str, Any]:
    """``{"input", "results"}``, with ``vars`` when the workflow declares variables, ``args`` when
    the step has them (each expression evaluated on ``variables``: raises ExpressionError), and
    ``outcome`` for a compensation or finally step. A key is present only when it applies, so a
    worker of an older SDK sees the arguments it knows."""
    arguments: dict[str, Any] = {"input": state.input, "results": dict(state.results)}
    if definition.variables:
        arguments["vars"] = dict(state.vars)
    if config.args:
        arguments["args"] = {
            key: to_json(evaluate(program, variables, where=f"steps.{config.name}.args.{key}"), where=key)
            for key, program in config.args
        }
    ending = state.ending
    if config.handler and ending is not None:
        # The output only when the task can carry it beside the rest (it may be as large).
        fits = limits.json_size(ending.output) + state.carried_bytes + _OUTCOME_MARGIN <= max_task_bytes
        arguments["outcome"] = {
            "phase": ending.outcome.value,
            "reason": ending.reason,
            "step": ending.step,
            "output": ending.output if fits else None,
        }
    return arguments
