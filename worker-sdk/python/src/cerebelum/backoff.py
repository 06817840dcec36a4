"""Exponential backoff for reconnecting and re-submitting."""

from __future__ import annotations

__all__ = ["Backoff"]


class Backoff:
    """Delays that start at ``initial`` and double up to ``maximum`` until :meth:`reset`."""

    __slots__ = ("_next", "initial", "maximum")

    def __init__(self, initial: float = 0.1, maximum: float = 5.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next(self) -> float:
        """The delay to wait now; the following one is twice as long (capped)."""
        delay = self._next
        self._next = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial
