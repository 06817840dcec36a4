"""Outcomes other than plain success that a step can return (built with ``StepContext`` helpers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ApprovalRequest", "Outcome", "RetryAfter", "Sleep"]


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """Run this step again after ``delay_ms`` without counting a failed attempt."""

    delay_ms: int


@dataclass(frozen=True, slots=True)
class Sleep:
    """The step succeeded with ``result``; the execution then sleeps ``duration_ms`` durably."""

    duration_ms: int
    result: Any = None


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """The step waits for a human: approving completes it, rejecting fails it.

    ``timeout_ms`` of 0 means no timeout.
    """

    kind: str = "approval"
    timeout_ms: int = 0
    data: Any = None


Outcome = RetryAfter | Sleep | ApprovalRequest
