"""A schedule's spec, and the due times it gives: pure functions of the spec and an instant.

Field names are camelCase on the wire (YAML, JSON, a future `Schedule` resource), as in the
Workflow spec. Instants are epoch milliseconds; a due time is always a whole second, so the
execution id derived from it (`schedules.execution_id`) is unique per due time.

Cron expressions are evaluated by `cronsim`, which follows Debian's cron, daylight saving time
included (docs/schedules.md says what that means for users):

* an expression with a fixed minute and hour (``30 2 * * *``) runs once per local day: a time in
  the spring-forward gap runs at the first minute after the gap, a time in the fall-back overlap
  runs once, on its first pass;
* an expression whose minute or hour is a wildcard or a step (``*/15 * * * *``) follows real
  elapsed time: it skips the local times that do not exist and runs on both passes of the overlap.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from ..model.durations import parse_duration
from ..model.limits import DEFAULT_MAX_PAYLOAD_BYTES, MAX_NAME, MAX_REASON, MAX_WORKFLOW_KEY, json_size
from ..model.spec import Duration

__all__ = [
    "CRON_MACROS",
    "MAX_CRON",
    "MAX_NOTE",
    "MAX_SCHEDULE_KEY",
    "MAX_TIMEZONE",
    "Overlap",
    "ScheduleSpec",
    "check_schedule_key",
    "jitter_ms",
    "next_due_ms",
]

MAX_CRON: Final = 256
MAX_TIMEZONE: Final = 64  # the longest IANA name is some 30 characters
MAX_NOTE: Final = MAX_REASON  # a pause note: free text a person reads, like a cancel reason
MAX_SCHEDULE_KEY: Final = MAX_WORKFLOW_KEY  # "namespace/name" under the operator, the name in dev mode
MAX_SCHEDULE_INPUT_BYTES: Final = DEFAULT_MAX_PAYLOAD_BYTES

CRON_MACROS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
_NAMESPACE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
# cronsim searches up to fifty years ahead per match; an expression that never matches ends there.
_CRON_LOOKAHEAD_TRIES: Final = 3


class Overlap(StrEnum):
    """What a due time does while the schedule's previous execution still runs."""

    SKIP = "skip"  # not started; counted as skipped
    BUFFER_ONE = "bufferOne"  # started when the running one ends; at most one waits, later ones are skipped
    ALLOW_ALL = "allowAll"  # started anyway
    CANCEL_RUNNING = "cancelRunning"  # the running one is cancelled, then this one starts


def _cron(text: str) -> str:
    expression = CRON_MACROS.get(text.strip().lower(), text.strip())
    if len(expression.split()) != 5:
        raise ValueError(
            f"cron {text!r} must have 5 fields (minute hour day-of-month month day-of-week) or be one of"
            f" {', '.join(CRON_MACROS)}"
        )
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as error:
        raise ValueError(f"cron {text!r} is not valid: {error}") from None
    return text


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {name!r} is not an IANA time zone name, like 'UTC' or 'Europe/Paris'") from None
    return name


def _whole_seconds(text: str) -> str:
    if parse_duration(text) % 1000:
        raise ValueError(f"{text!r} must be whole seconds: due times are whole seconds")
    return text


CronText = Annotated[str, Field(min_length=1, max_length=MAX_CRON), AfterValidator(_cron)]
TimezoneName = Annotated[str, Field(min_length=1, max_length=MAX_TIMEZONE), AfterValidator(_timezone)]
WholeSeconds = Annotated[Duration, AfterValidator(_whole_seconds)]


class ScheduleSpec(BaseModel):
    """When to start which workflow with which input, and what to do when fires overlap or were missed."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    workflow: str = Field(min_length=1, max_length=MAX_WORKFLOW_KEY)
    input: Any = None
    cron: CronText | None = Field(default=None, description="5 fields, or @hourly, @daily, @weekly, @monthly, @yearly.")
    interval: WholeSeconds | None = Field(default=None, description="Every this long, counted from the Unix epoch.")
    offset: WholeSeconds | None = Field(default=None, description="With interval: shifts each due time by this.")
    timezone: TimezoneName = "UTC"
    overlap: Overlap = Overlap.SKIP
    catchup_window: Duration = Field(default="1m", description="A due time missed by more than this is dropped.")
    jitter: Duration = Field(default="0s", description="Each fire is delayed by a fixed fraction of this (a hash).")
    paused: bool = False
    note: str = Field(default="", max_length=MAX_NOTE)
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleSpec:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("a schedule has exactly one of cron and interval")
        if self.offset is not None:
            if self.interval is None:
                raise ValueError("offset goes with interval only")
            if parse_duration(self.offset) >= parse_duration(self.interval):
                raise ValueError(f"offset {self.offset} must be shorter than interval {self.interval}")
        if self.interval is not None and parse_duration(self.interval) < 1000:
            raise ValueError(f"interval {self.interval} is shorter than the minimum, 1s")
        if self.start_at is not None and self.end_at is not None and self.end_at <= self.start_at:
            raise ValueError("endAt must be after startAt")
        size = json_size(self.input)
        if size > MAX_SCHEDULE_INPUT_BYTES:
            raise ValueError(f"input is {size} bytes of JSON, over the limit of {MAX_SCHEDULE_INPUT_BYTES}")
        return self

    # -- derived, in milliseconds ---------------------------------------------------------------
    @property
    def catchup_window_ms(self) -> int:
        return parse_duration(self.catchup_window)

    @property
    def jitter_max_ms(self) -> int:
        return parse_duration(self.jitter)

    @property
    def interval_ms(self) -> int | None:
        return None if self.interval is None else parse_duration(self.interval)

    @property
    def offset_ms(self) -> int:
        return 0 if self.offset is None else parse_duration(self.offset)

    @property
    def start_at_ms(self) -> int | None:
        return None if self.start_at is None else _ms(self.start_at)

    @property
    def end_at_ms(self) -> int | None:
        return None if self.end_at is None else _ms(self.end_at)

    @property
    def cron_expression(self) -> str | None:
        """The cron text with a macro expanded."""
        return None if self.cron is None else CRON_MACROS.get(self.cron.strip().lower(), self.cron.strip())

    def to_document(self) -> dict[str, Any]:
        """The spec as JSON, camelCase, defaults filled in: what the store and the wire keep."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def check_schedule_key(key: str) -> str:
    """``key`` when it is ``name`` or ``namespace/name`` with Kubernetes-style parts; ValueError naming why."""
    namespace, _, name = key.rpartition("/")
    if len(key) > MAX_SCHEDULE_KEY or not name or len(name) > MAX_NAME:
        raise ValueError(f"schedule name {key[:80]!r} must be 1 to {MAX_NAME} characters")
    if not (set(name) <= _NAME_CHARS and name[0].isalnum() and name[-1].isalnum()):
        raise ValueError(
            f"schedule name {name!r} is not valid: use lowercase letters, digits, '-' and '.',"
            " starting and ending with a letter or digit"
        )
    if "/" in key and not (
        0 < len(namespace) <= 63
        and set(namespace) <= _NAMESPACE_CHARS
        and namespace[0].isalnum()
        and namespace[-1].isalnum()
    ):
        raise ValueError(f"schedule namespace {namespace!r} is not a Kubernetes namespace name")
    return key


def next_due_ms(spec: ScheduleSpec, after_ms: int) -> int | None:
    """The first due time strictly after ``after_ms`` (inside startAt..endAt), or None when there is none."""
    start = spec.start_at_ms
    if start is not None and after_ms < start:
        after_ms = start - 1
    due = _next_interval(spec, after_ms) if spec.interval_ms is not None else _next_cron(spec, after_ms)
    end = spec.end_at_ms
    if due is None or (end is not None and due > end):
        return None
    return due


def _next_interval(spec: ScheduleSpec, after_ms: int) -> int:
    interval, offset = spec.interval_ms, spec.offset_ms
    assert interval is not None
    # The smallest offset + k*interval > after_ms (floor division rounds toward -inf, as wanted).
    return offset + ((after_ms - offset) // interval + 1) * interval


def _next_cron(spec: ScheduleSpec, after_ms: int) -> int | None:
    expression = spec.cron_expression
    assert expression is not None
    zone = ZoneInfo(spec.timezone)
    # cronsim steps from the whole second it is given; the first match strictly after it is the answer.
    start = datetime.fromtimestamp((after_ms // 1000), tz=UTC).astimezone(zone)
    iterator = CronSim(expression, start)
    for _ in range(_CRON_LOOKAHEAD_TRIES):
        try:
            found = next(iterator)
        except StopIteration:  # no match within fifty years: the schedule never fires again
            return None
        due = _ms(found)
        if due > after_ms:
            return due
    return None


def jitter_ms(spec: ScheduleSpec, key: str, due_ms: int) -> int:
    """How long after ``due_ms`` it fires: a hash of the schedule and the due time, below ``jitter``.

    Never random: after a restart, or in a replay of the core, the same due time fires at the same
    instant. Also below the time to the next due time, so fires keep the order of their due times
    (due times are settled in order: a later one must never wait for an earlier one's longer jitter).
    """
    bound = spec.jitter_max_ms
    if bound <= 0:
        return 0
    following = next_due_ms(spec, due_ms)
    if following is not None:
        bound = min(bound, following - due_ms)
    digest = hashlib.blake2b(f"{key}\n{due_ms}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % bound
