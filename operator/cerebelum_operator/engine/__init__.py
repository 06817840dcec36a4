"""The pure engine core: events, state folded from them, and `decide`."""

from . import actions, commands, events
from .decide import DEFAULT_MAX_HISTORY_EVENTS, CommandRejected, Decision, Reply, decide, parse_token
from .state import ExecutionPhase, ExecutionState, StepPhase, StepState, apply_event, fold

__all__ = [
    "DEFAULT_MAX_HISTORY_EVENTS",
    "CommandRejected",
    "Decision",
    "ExecutionPhase",
    "ExecutionState",
    "Reply",
    "StepPhase",
    "StepState",
    "actions",
    "apply_event",
    "commands",
    "decide",
    "events",
    "fold",
    "parse_token",
]
