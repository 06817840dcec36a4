"""The identifiers `decide` makes: task tokens, timer ids, dead-letter ids and attempt references.

Each is a small frozen dataclass with ``encode()`` and ``parse()``, so the engine builds and reads
them in one place instead of f-strings taken apart with ``rsplit``. The encoded form is the wire
and store format: task tokens are in workers' hands and ids are keys of store rows, so it must
never change (``tests/unit/engine/test_ids.py`` parses strings written by earlier releases).

``parse`` is strict: it accepts exactly what ``encode`` writes (``parse(text).encode() == text``),
and raises `InvalidId` (a ValueError) naming the problem for anything else. Step names cannot hold
``/`` (the model's pattern), execution ids may: the fixed fields are taken from the right.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

__all__ = [
    "DEADLINE_STEP",
    "WORKFLOW_TASK_PREFIX",
    "WORKFLOW_TASK_STEP",
    "ApprovalRejection",
    "ApprovalTimeout",
    "AttemptRef",
    "DeadLetterId",
    "InvalidId",
    "RejectedResult",
    "TaskToken",
    "TimerId",
    "TimerKind",
    "child_id",
    "message_id",
    "next_run_id",
    "parse_attempt_ref",
    "parse_dead_letter_id",
]


class InvalidId(ValueError):
    """A string that is not an identifier of the expected kind; the message says which part is wrong."""


def _count(text: str, what: str, whole: str) -> int:
    """A non-negative decimal written as `encode` writes it (no sign, spaces, '_' or leading zeros)."""
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise InvalidId(f"{whole!r}: the {what} {text!r} is not a decimal count")
    return int(text)


def _split(text: str, parts: int, what: str) -> list[str]:
    fields = text.rsplit("/", parts - 1)
    if len(fields) != parts or not all(fields):
        raise InvalidId(f"{text!r} is not a {what}: expected {parts} non-empty parts separated by '/'")
    return fields


@dataclass(frozen=True, slots=True)
class TaskToken:
    """One task of one attempt: ``<execution>/<step>/<attempt>/<poll>/<seq>``.

    ``poll`` counts the retry-after runs of the attempt; ``seq`` is the seq of the StepScheduled
    event that made the task, which makes every token of an execution unique. An item of a
    forEach step writes its index after the step, ``<step>[<item>]`` (a step name holds no ``[``),
    and ``seq`` is that of the event that scheduled the item.
    """

    execution_id: str
    step: str
    attempt: int
    poll: int
    seq: int
    item: int | None = None

    def encode(self) -> str:
        step = self.step if self.item is None else f"{self.step}[{self.item}]"
        return f"{self.execution_id}/{step}/{self.attempt}/{self.poll}/{self.seq}"

    @staticmethod
    def parse(text: str) -> TaskToken:
        # A step's token is parsed a few times on its way (the report, the engine's checks, the next
        # task): the last ones parsed are kept, as the value is immutable.
        return _parsed_task_token(text)

    @classmethod
    def _parse(cls, text: str) -> Self:
        execution_id, step, attempt, poll, seq = _split(text, 5, "task token")
        item = None
        if step.endswith("]"):
            step, bracket, index = step[:-1].partition("[")
            if not bracket or not step:
                raise InvalidId(f"{text!r}: the step {step!r} is not a step name or a step's item")
            item = _count(index, "item", text)
        return cls(
            execution_id,
            step,
            _count(attempt, "attempt", text),
            _count(poll, "poll", text),
            _count(seq, "seq", text),
            item,
        )


@functools.lru_cache(maxsize=4096)
def _parsed_task_token(text: str) -> TaskToken:
    return TaskToken._parse(text)


class TimerKind(StrEnum):
    SLEEP = "sleep"  # a step's ctx.sleep: wakes the execution
    APPROVAL = "approval"  # an approval's timeout
    SCHEDULE_TO_START = "schedule-to-start"  # a task no worker took within scheduleToStartTimeout
    TIMER = "timer"  # a timer step's wake-up
    DEADLINE = "deadline"  # the workflow's timeout; its step part is DEADLINE_STEP
    SIGNAL = "signal"  # a signal step's timeout


DEADLINE_STEP = "workflow"
# The step part of a code workflow's workflow task tokens: no step name can be it (it holds an @).
WORKFLOW_TASK_STEP = "@workflow"
# A workflow task's "function" for the dispatcher: the workflow function, after this (no step's
# function name holds a colon), so a worker is offered the workflow tasks of what it registered.
WORKFLOW_TASK_PREFIX = "workflow:"


@dataclass(frozen=True, slots=True)
class TimerId:
    """A durable timer: ``<execution>/<kind>/<step>/<seq>``.

    ``seq`` is the seq of the event the timer belongs to (a sleep's or approval's, or for
    schedule-to-start the StepScheduled of the task it watches, so its token's seq).
    """

    execution_id: str
    kind: TimerKind
    step: str
    seq: int

    def encode(self) -> str:
        return f"{self.execution_id}/{self.kind.value}/{self.step}/{self.seq}"

    @classmethod
    def parse(cls, text: str) -> Self:
        execution_id, kind, step, seq = _split(text, 4, "timer id")
        try:
            timer_kind = TimerKind(kind)
        except ValueError:
            raise InvalidId(f"{text!r}: unknown timer kind {kind!r}") from None
        return cls(execution_id, timer_kind, step, _count(seq, "seq", text))

    @classmethod
    def for_task(cls, token: TaskToken) -> Self:
        """The schedule-to-start timer that watches this task."""
        return cls(token.execution_id, TimerKind.SCHEDULE_TO_START, token.step, token.seq)


@dataclass(frozen=True, slots=True)
class RejectedResult:
    """A dead letter for a result the step's diverge rules retried until the attempts ran out.

    ``<execution>/<step>/<attempt>/result/<seq>``: no task failed, so there is no token to name it.
    """

    execution_id: str
    step: str
    attempt: int
    seq: int

    def encode(self) -> str:
        return f"{self.execution_id}/{self.step}/{self.attempt}/result/{self.seq}"

    @classmethod
    def parse(cls, text: str) -> Self:
        execution_id, step, attempt, marker, seq = _split(text, 5, "rejected-result id")
        if marker != "result":
            raise InvalidId(f"{text!r} is not a rejected-result id: its fourth part is not 'result'")
        return cls(execution_id, step, _count(attempt, "attempt", text), _count(seq, "seq", text))


DeadLetterId = TaskToken | RejectedResult
"""A dead letter is named by the token of the attempt that gave up, or by the rejected result."""


def parse_dead_letter_id(text: str) -> DeadLetterId:
    if text.rpartition("/")[0].endswith("/result"):
        return RejectedResult.parse(text)
    return TaskToken.parse(text)


@dataclass(frozen=True, slots=True)
class ApprovalTimeout:
    """What a StepFailed for an approval that timed out names instead of a task token."""

    timer: TimerId

    def encode(self) -> str:
        return f"approval:{self.timer.encode()}"

    @classmethod
    def parse(cls, text: str) -> Self:
        if not text.startswith("approval:"):
            raise InvalidId(f"{text!r} is not an approval timeout: it does not start with 'approval:'")
        return cls(TimerId.parse(text.removeprefix("approval:")))


@dataclass(frozen=True, slots=True)
class ApprovalRejection:
    """What a StepFailed for a rejected approval names: ``approval:<step>:<seq of the rejection>``."""

    step: str
    seq: int

    def encode(self) -> str:
        return f"approval:{self.step}:{self.seq}"

    @classmethod
    def parse(cls, text: str) -> Self:
        prefix, _, rest = text.partition(":")
        step, colon, seq = rest.rpartition(":")
        if prefix != "approval" or not colon or not step or "/" in step:
            raise InvalidId(f"{text!r} is not an approval rejection: expected 'approval:<step>:<seq>'")
        return cls(step, _count(seq, "seq", text))


AttemptRef = TaskToken | ApprovalTimeout | ApprovalRejection
"""What a StepFailed's ``token`` names: the attempt's task, or the approval that ended it."""


def parse_attempt_ref(text: str) -> AttemptRef:
    if text.startswith("approval:"):
        rest = text.removeprefix("approval:")
        return ApprovalTimeout.parse(text) if "/" in rest else ApprovalRejection.parse(text)
    return TaskToken.parse(text)


_MAX_EXECUTION_ID = 128  # model.limits.MAX_EXECUTION_ID, which the engine may not import here


def _bounded_id(readable: str, *parts: object) -> str:
    """``readable`` when it fits an execution id, else a digest of its parts (still deterministic)."""
    if len(readable) <= _MAX_EXECUTION_ID:
        return readable
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()[:40]
    return f"x-{digest}"


def child_id(parent_id: str, step: str, run: int, attempt: int) -> str:
    """The id of the child a step's attempt starts: ``<parent>:<step>:<run>.<attempt>``.

    Deterministic, so a replayed decision and a relayed start agree, and a retried attempt or a
    loop back over the step starts a new child instead of finding the old one.
    """
    return _bounded_id(f"{parent_id}:{step}:{run}.{attempt}", "child", parent_id, step, run, attempt)


def next_run_id(first_run_id: str, run: int) -> str:
    """The id of a continue-as-new chain's run number ``run`` (2 and up): ``<first>:run-<n>``."""
    return _bounded_id(f"{first_run_id}:run-{run}", "run", first_run_id, run)


def message_id(execution_id: str, seq: int, index: int) -> str:
    """An outbox message: the ``index``-th one the decision ending at ``seq`` of the execution sent."""
    return f"{execution_id}/message/{seq}/{index}"
