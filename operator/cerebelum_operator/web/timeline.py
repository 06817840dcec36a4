"""An execution's attempts as bars on a time axis, read from its history (pure).

One lane per step, in the order steps were first reached. A bar is a span of one kind: waiting in
the queue, running on a worker, waiting out a retry's backoff, sleeping, waiting for an approval or
a signal, or a child execution. A span still open at the end of the history ends at ``now_ms``.
A forEach step's items share its lane as one "running" span (the fan-out from start to end), so a
lane never holds more than :data:`MAX_BARS_PER_LANE` bars; the rest are counted, not drawn.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..engine import events as ev
from ..engine.events import RecordedEvent

__all__ = ["MAX_BARS_PER_LANE", "MAX_LANES", "Bar", "Lane", "Timeline", "timeline"]

MAX_BARS_PER_LANE = 60
MAX_LANES = 200


@dataclass(frozen=True, slots=True)
class Bar:
    kind: str  # queued, running, retry-wait, sleep, approval, signal, child
    start_ms: int
    end_ms: int
    attempt: int = 0
    outcome: str = ""  # succeeded, failed, timed out, approved, rejected... ("" while open)
    open: bool = False

    @property
    def title(self) -> str:
        attempt = f" attempt {self.attempt}" if self.attempt else ""
        state = self.outcome or ("in progress" if self.open else "")
        return f"{self.kind}{attempt}: {self.end_ms - self.start_ms} ms{', ' + state if state else ''}"


@dataclass(slots=True)
class Lane:
    step: str
    bars: list[Bar] = field(default_factory=list)
    hidden: int = 0  # bars past MAX_BARS_PER_LANE, counted


@dataclass(frozen=True, slots=True)
class Timeline:
    lanes: tuple[Lane, ...]
    start_ms: int
    end_ms: int
    hidden_lanes: int = 0

    @property
    def span_ms(self) -> int:
        return max(1, self.end_ms - self.start_ms)

    def scale(self, at_ms: int, width: int) -> int:
        """Where ``at_ms`` falls on an axis ``width`` pixels wide."""
        return round((at_ms - self.start_ms) * width / self.span_ms)


class _Builder:
    def __init__(self) -> None:
        self.lanes: dict[str, Lane] = {}
        self.open: dict[tuple[str, str], tuple[int, int]] = {}  # (step, kind) -> (start, attempt)
        self.hidden_lanes = 0

    def lane(self, step: str) -> Lane | None:
        lane = self.lanes.get(step)
        if lane is None:
            if len(self.lanes) >= MAX_LANES:
                self.hidden_lanes += 1
                return None
            lane = self.lanes[step] = Lane(step)
        return lane

    def begin(self, step: str, kind: str, at_ms: int, attempt: int = 0) -> None:
        if self.lane(step) is not None:
            self.open[(step, kind)] = (at_ms, attempt)

    def end(self, step: str, kind: str, at_ms: int, outcome: str) -> None:
        started = self.open.pop((step, kind), None)
        lane = self.lanes.get(step)
        if started is None or lane is None:
            return
        self._add(lane, Bar(kind, started[0], max(at_ms, started[0]), started[1], outcome))

    def close_all(self, step: str, at_ms: int, outcome: str) -> None:
        for step_kind in [key for key in self.open if key[0] == step]:
            self.end(step, step_kind[1], at_ms, outcome)

    @staticmethod
    def _add(lane: Lane, bar: Bar) -> None:
        if len(lane.bars) < MAX_BARS_PER_LANE:
            lane.bars.append(bar)
        else:
            lane.hidden += 1

    def finish(self, now_ms: int) -> None:
        for (step, kind), (start, attempt) in sorted(self.open.items(), key=lambda item: item[1][0]):
            lane = self.lanes.get(step)
            if lane is not None:
                self._add(lane, Bar(kind, start, max(now_ms, start), attempt, open=True))
        self.open.clear()


def timeline(history: Iterable[RecordedEvent], *, now_ms: int) -> Timeline:
    """The bars of a history; ``now_ms`` ends what is still open (the execution's end if it ended)."""
    b = _Builder()
    first: int | None = None
    last = now_ms
    ended = False
    for recorded in history:
        at, event = recorded.at_ms, recorded.event
        first = at if first is None else first
        match event:
            case ev.StepScheduled(step=step, attempt=attempt):
                b.close_all(step, at, "")
                b.begin(step, "queued", max(at, event.visible_at_ms), attempt)
            case ev.StepStarted(step=step, attempt=attempt):
                b.end(step, "queued", at, "started")
                b.begin(step, "running", at, attempt)
            case ev.StepCompleted(step=step):
                b.end(step, "running", at, "succeeded")
            case ev.StepFailed(step=step, retry_at_ms=retry_at):
                b.end(step, "running", at, f"failed: {event.error_type}")
                b.end(step, "queued", at, "failed")
                if retry_at is not None:
                    b.begin(step, "retry-wait", at, event.attempt)
            case ev.StepRetryAfter(step=step):
                b.end(step, "running", at, "retry after")
                b.begin(step, "retry-wait", at, event.attempt)
            case ev.StepDeadLettered(step=step):
                b.close_all(step, at, "dead-lettered")
            case ev.ForEachStarted(step=step):
                b.begin(step, "running", at)
            case ev.SleepStarted(step=step):
                b.begin(step, "sleep", at)
            case ev.SleepEnded(step=step):
                b.end(step, "sleep", at, "woke")
            case ev.ApprovalRequested(step=step):
                b.begin(step, "approval", at)
            case ev.ApprovalGranted(step=step):
                b.end(step, "approval", at, f"approved by {event.approver}")
            case ev.ApprovalRejected(step=step):
                b.end(step, "approval", at, f"rejected by {event.approver}")
            case ev.ApprovalTimedOut(step=step):
                b.end(step, "approval", at, "timed out")
            case ev.SignalWaitStarted(step=step):
                b.begin(step, "signal", at)
            case ev.SignalDelivered(step=step):
                b.end(step, "signal", at, "signalled")
            case ev.SignalWaitTimedOut(step=step):
                b.end(step, "signal", at, "timed out")
            case ev.ChildStarted(step=step):
                b.begin(step, "child", at)
            case ev.ChildEnded(step=step):
                b.end(step, "child", at, event.phase.lower())
            case ev.StepSkipped(step=step):
                b.lane(step)
            case (
                ev.ExecutionSucceeded() | ev.ExecutionFailed() | ev.ExecutionCancelled() | ev.ExecutionContinuedAsNew()
            ):
                last, ended = at, True
                for step in list(b.lanes):
                    b.close_all(step, at, "ended")
            case _:
                pass
    b.finish(last if ended else now_ms)
    start = first if first is not None else now_ms
    end = max([last if ended else now_ms, start + 1, *(bar.end_ms for lane in b.lanes.values() for bar in lane.bars)])
    return Timeline(tuple(b.lanes.values()), start, end, b.hidden_lanes)
