"""The step names a worker's ``Work`` stream polled with, kept for its reports' ``poll_next``.

A worker's report asks for its next task (``poll_next``) with the steps it can run; a worker with
many steps (the benchmark's registers 200) sent them all with every report, and turning them into a
set was a tenth of the engine's work per step. On a Work stream a report may send
``stream_steps`` instead: the steps of that stream's last ``PollTask`` of the queue, kept here.

The servicers see a stream's calls through a context whose ``stream_steps`` attribute is that
stream's map (`server.work_stream`); a unary call's context has none, so nothing is kept for it.
What a stream keeps only narrows its own stand-bys, which are authorised per report: it needs no
check of its own. Bounded per stream: a stream's worker serves a queue or a few.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

__all__ = ["MAX_STREAM_QUEUES", "StreamSteps", "remember_stream_steps", "stream_steps_of"]

StreamSteps = dict[str, frozenset[str]]  # task queue -> the steps its last poll on the stream sent
MAX_STREAM_QUEUES: Final = 64  # task queues kept per stream; past it the oldest is forgotten


def stream_steps_of(context: Any) -> StreamSteps | None:
    """The map of the Work stream `context` belongs to; None for a unary call."""
    steps: StreamSteps | None = getattr(context, "stream_steps", None)
    return steps


def remember_stream_steps(context: Any, task_queue: str, steps: Iterable[str]) -> None:
    """A poll on a Work stream: its steps stand for the stream's reports from now on (a unary call: nothing)."""
    kept = stream_steps_of(context)
    if kept is None:
        return
    kept.pop(task_queue, None)
    if len(kept) >= MAX_STREAM_QUEUES:
        del kept[next(iter(kept))]
    kept[task_queue] = frozenset(steps)  # a frozenset given is kept as it is, not copied
