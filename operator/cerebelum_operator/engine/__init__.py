"""The pure engine core: events, state folded from them, and `decide`."""

from . import actions, commands, events
from .decide import CommandRejected, Decision, Reply, decide, parse_token
from .state import ExecutionPhase, ExecutionState, StepPhase, StepState, apply_event, fold

__all__ = [
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
