"""Say once that a dependency is down and once that it is back, however often a loop retries it.

A sweep that runs ten times a second and fails on every expired lease would otherwise write
thousands of identical warnings during one outage, hiding everything else in the log.
"""

from __future__ import annotations

import logging

from .clock import Clock

__all__ = ["OutageLog"]


class OutageLog:
    """One WARNING when an outage starts, one INFO (with its length) when it ends."""

    def __init__(self, logger: logging.Logger, *, down: str, back: str, clock: Clock) -> None:
        """`down` is formatted with the error (``{error}``), `back` with the outage's length (``{seconds}``)."""
        self._log = logger
        self._down = down
        self._back = back
        self._clock = clock
        self._since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException) -> None:
        """A call failed: warn if this starts an outage, stay quiet if one is under way."""
        if self._since is None:
            self._since = self._clock.now_s()
            self._log.warning(self._down.format(error=error))

    def succeeded(self) -> None:
        """A call worked: if an outage was under way, say it ended and how long it lasted."""
        if self._since is not None:
            seconds = max(0.0, self._clock.now_s() - self._since)
            self._since = None
            self._log.info(self._back.format(seconds=f"{seconds:.1f}"))
