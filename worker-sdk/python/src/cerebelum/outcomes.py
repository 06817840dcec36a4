"""Outcomes other than plain success that a step can return (built with ``StepContext`` helpers)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

__all__ = ["ApprovalRequest", "Outcome", "RetryAfter", "Sleep", "helper_name"]


class _NotAwaitable:
    """``await ctx.sleep(...)`` is a mistake: say how to write it instead of "can't be awaited".

    Hidden from type checkers, which then flag the ``await`` themselves.
    """

    __slots__ = ()

    if not TYPE_CHECKING:

        def __await__(self) -> Generator[Any, None, NoReturn]:
            helper = helper_name(self)
            raise TypeError(
                f"{helper} returns an outcome, not a coroutine: write `return {helper}` in the step, do not await it"
            )


@dataclass(frozen=True, slots=True)
class RetryAfter(_NotAwaitable):
    """Run this step again after ``delay_ms`` without counting a failed attempt."""

    delay_ms: int


@dataclass(frozen=True, slots=True)
class Sleep(_NotAwaitable):
    """The step succeeded with ``result``; the execution then sleeps ``duration_ms`` durably."""

    duration_ms: int
    result: Any = None


@dataclass(frozen=True, slots=True)
class ApprovalRequest(_NotAwaitable):
    """The step waits for a human: approving completes it, rejecting fails it.

    ``timeout_ms`` of 0 means no timeout.
    """

    kind: str = "approval"
    timeout_ms: int = 0
    data: Any = None


Outcome = RetryAfter | Sleep | ApprovalRequest

_HELPERS: dict[type[Any], str] = {
    RetryAfter: "ctx.retry_after(...)",
    Sleep: "ctx.sleep(...)",
    ApprovalRequest: "ctx.request_approval(...)",
}


def helper_name(outcome: object) -> str:
    """The ``StepContext`` call that builds ``outcome``, for error messages."""
    return _HELPERS.get(type(outcome), type(outcome).__name__)
