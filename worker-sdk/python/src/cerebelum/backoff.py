"""Exponential backoff with full jitter for reconnecting and re-submitting.

Without jitter, every worker that lost the engine retries at the same instants (0.1 s, 0.2 s,
0.4 s, ...), so a restarted engine is hit by all of them at once, again and again. Full jitter
(a random delay between 0 and the exponential ceiling) spreads them out; see "Exponential
Backoff And Jitter" (AWS Architecture Blog, 2015).
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """Random delays below a ceiling that starts at ``initial`` and doubles up to ``maximum``.

    ``random`` returns a float in [0, 1); inject a seeded one (``random.Random(1).random``) to
    make the delays reproducible in tests. :meth:`reset` brings the ceiling back to ``initial``.
    """

    __slots__ = ("_ceiling", "_random", "initial", "maximum")

    def __init__(
        self, initial: float = 0.1, maximum: float = 5.0, *, random: Callable[[], float] = _random.random
    ) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self._random = random
        self._ceiling = initial

    @property
    def ceiling(self) -> float:
        """The largest delay :meth:`next` may return now."""
        return self._ceiling

    def next(self) -> float:
        """A delay in [0, ceiling); the ceiling then doubles (capped at ``maximum``)."""
        delay = self._ceiling * self._random()
        self._ceiling = min(self._ceiling * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._ceiling = self.initial
