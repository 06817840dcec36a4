"""Makes the worker's log lines visible when the application configured no logging.

Python drops INFO records when nobody configured logging, so a worker started from a plain
script printed nothing: not that it started, not why a step failed. Like servers that own
their process (uvicorn, gunicorn), ``Worker.run()`` adds a stderr handler, but to the
``cerebelum`` logger only and only when neither it nor the root logger has a handler, so an
application that configured logging keeps full control.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["LOGGER", "LOG_FORMAT", "default_logging"]

LOGGER = "cerebelum"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def default_logging(*, enabled: bool = True) -> Iterator[logging.Handler | None]:
    """While inside, log ``cerebelum`` INFO and above to stderr unless logging is configured.

    Yields the handler it added (``None`` when it added none); removes it on exit.
    """
    logger = logging.getLogger(LOGGER)
    if not enabled or logger.handlers or logging.getLogger().handlers:
        yield None
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    level = logger.level
    logger.addHandler(handler)
    if level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
