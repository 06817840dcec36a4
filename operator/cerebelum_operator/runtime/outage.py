"""One warning per outage: a loop that fails every tenth of a second says so once, then once when it recovers."""

from __future__ import annotations

import logging

__all__ = ["OutageLog"]


class OutageLog:
    """Logs the first failure of an outage as a warning and the first success after it as info.

    A sweep or a retry loop that hits an unavailable dependency on every round would otherwise
    log a line per round (ten a second, per item), burying the one line that matters.
    """

    __slots__ = ("_down", "_logger", "_recovered", "_what")

    def __init__(self, logger: logging.Logger, *, what: str, recovered: str) -> None:
        self._logger = logger
        self._what = what
        self._recovered = recovered
        self._down = False

    @property
    def down(self) -> bool:
        """True between a failure and the next success."""
        return self._down

    def failed(self, error: BaseException) -> None:
        """Warn, unless this outage was already reported."""
        if not self._down:
            self._down = True
            self._logger.warning("%s (%s)", self._what, error)

    def succeeded(self) -> None:
        """End the outage, saying so once."""
        if self._down:
            self._down = False
            self._logger.info("%s", self._recovered)
