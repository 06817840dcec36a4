"""The schedule core: due times, overlap, catch-up, jitter and ids, on plain integer times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from cerebelum_operator.engine.schedule_spec import ScheduleSpec, check_schedule_key, jitter_ms, next_due_ms
from cerebelum_operator.engine.schedules import (
    Cancel,
    Outcome,
    ScheduleState,
    Start,
    execution_id,
    next_fire,
    plan,
    start_failed,
    trigger,
    trigger_execution_id,
)

SECOND = 1000
PARIS = ZoneInfo("Europe/Paris")


def spec(**fields: Any) -> ScheduleSpec:
    document: dict[str, Any] = {"workflow": "report"}
    if "cron" not in fields:
        document["interval"] = "10s"
    document.update(fields)
    return ScheduleSpec.model_validate(document)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, zone: Any = UTC) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=zone).timestamp() * 1000)


def local(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, PARIS).isoformat()


def dues(schedule: ScheduleSpec, after_ms: int, count: int) -> list[int]:
    found: list[int] = []
    for _ in range(count):
        due = next_due_ms(schedule, after_ms)
        assert due is not None
        found.append(due)
        after_ms = due
    return found


# -- the spec ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"cron": "* * *"}, "must have 5 fields"),
        ({"cron": "0 0 * * * *"}, "must have 5 fields"),
        ({"cron": "61 * * * *"}, "cron '61 * * * *' is not valid: Bad minute"),
        ({"cron": "@daily", "interval": "1m"}, "exactly one of cron and interval"),
        ({"interval": "1500ms"}, "must be whole seconds"),
        ({"interval": "500ms"}, "must be whole seconds"),
        ({"interval": "1m", "offset": "1m"}, "offset 1m must be shorter than interval 1m"),
        ({"cron": "@daily", "offset": "1m"}, "offset goes with interval only"),
        ({"cron": "@daily", "timezone": "Mars/Olympus"}, "timezone 'Mars/Olympus' is not an IANA time zone"),
        ({"catchupWindow": "soon"}, "catchupWindow"),
        ({"overlap": "queue"}, "overlap"),
        ({"note": "x" * 9000}, "note"),
        ({"startAt": "2026-01-02T00:00:00Z", "endAt": "2026-01-01T00:00:00Z"}, "endAt must be after startAt"),
        ({"startAt": "2026-01-02T00:00:00"}, "startAt"),
        ({"schedule": "hourly"}, "schedule"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError) as refused:
        spec(**fields)
    assert named in str(refused.value)


def test_the_wire_form_is_camel_case_and_reads_back_equal() -> None:
    schedule = spec(catchupWindow="5m", overlap="bufferOne", startAt="2026-01-01T00:00:00Z")
    document = schedule.to_document()
    assert document["catchupWindow"] == "5m"
    assert document["overlap"] == "bufferOne"
    assert ScheduleSpec.model_validate(document) == schedule


@pytest.mark.parametrize("key", ["nightly", "team-a/nightly", "a.b-c"])
def test_a_schedule_key_is_a_name_or_a_namespace_and_a_name(key: str) -> None:
    assert check_schedule_key(key) == key


@pytest.mark.parametrize("key", ["", "Nightly", "a/b/c", "-a", "a_b", "ns/", "x" * 254])
def test_a_schedule_key_outside_kubernetes_names_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="schedule"):
        check_schedule_key(key)


# -- due times -----------------------------------------------------------------------------------


def test_interval_due_times_are_counted_from_the_epoch_shifted_by_the_offset() -> None:
    assert dues(spec(interval="1m", offset="15s"), 0, 3) == [15 * SECOND, 75 * SECOND, 135 * SECOND]
    assert next_due_ms(spec(interval="1m"), 60 * SECOND) == 120 * SECOND, "strictly after"


def test_cron_due_times_follow_the_expression_in_its_time_zone() -> None:
    daily = spec(cron="0 9 * * *", timezone="Europe/Paris")
    found = dues(daily, at(2026, 1, 10, 12), 2)
    assert [local(due) for due in found] == ["2026-01-11T09:00:00+01:00", "2026-01-12T09:00:00+01:00"]


@pytest.mark.parametrize(("macro", "expected"), [("@hourly", at(2026, 1, 10, 13)), ("@daily", at(2026, 1, 11))])
def test_cron_macros_are_the_usual_expressions(macro: str, expected: int) -> None:
    assert next_due_ms(spec(cron=macro), at(2026, 1, 10, 12, 30)) == expected


def test_a_fixed_time_in_the_spring_forward_gap_runs_once_at_the_end_of_the_gap() -> None:
    found = dues(spec(cron="30 2 * * *", timezone="Europe/Paris"), at(2026, 3, 28, 12), 2)
    assert [local(due) for due in found] == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_a_fixed_time_in_the_fall_back_overlap_runs_once_on_its_first_pass() -> None:
    found = dues(spec(cron="30 2 * * *", timezone="Europe/Paris"), at(2026, 10, 24, 12), 2)
    assert [local(due) for due in found] == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_a_wildcard_hour_follows_elapsed_time_and_runs_on_both_passes_of_the_overlap() -> None:
    found = dues(spec(cron="30 * * * *", timezone="Europe/Paris"), at(2026, 10, 24, 23), 3)
    assert [local(due) for due in found] == [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
    ]


def test_start_at_and_end_at_bound_the_due_times() -> None:
    bounded = spec(interval="10s", startAt="1970-01-01T00:01:00Z", endAt="1970-01-01T00:01:20Z")
    assert dues(bounded, 0, 3) == [60 * SECOND, 70 * SECOND, 80 * SECOND]
    assert next_due_ms(bounded, 80 * SECOND) is None


def test_jitter_is_below_its_bound_and_the_same_for_the_same_schedule_and_due_time() -> None:
    jittered = spec(jitter="30s")
    values = [jitter_ms(jittered, "report", due) for due in range(0, 1000 * SECOND, 10 * SECOND)]
    assert all(0 <= value < 30 * SECOND for value in values)
    assert len(set(values)) > 50, "spread over the bound, not one value"
    assert values == [jitter_ms(jittered, "report", due) for due in range(0, 1000 * SECOND, 10 * SECOND)]
    assert jitter_ms(jittered, "other", 0) != jitter_ms(jittered, "report", 0) or values[0] == 0


# -- ids -----------------------------------------------------------------------------------------


def test_an_execution_id_is_the_schedule_and_its_due_time_in_utc() -> None:
    assert execution_id("nightly", at(2026, 12, 4, 19)) == "nightly-20261204T190000Z"
    assert execution_id("team-a/nightly", at(2026, 12, 4, 19)) == "team-a:nightly-20261204T190000Z"


def test_a_long_schedule_name_is_cut_and_hashed_to_keep_the_id_within_128_characters() -> None:
    long_a, long_b = "a" * 200, "a" * 199 + "b"
    id_a, id_b = execution_id(long_a, 0), execution_id(long_b, 0)
    assert len(trigger_execution_id("ns/" + long_a, 123)) <= 128
    assert len(id_a) <= 128
    assert id_a != id_b


def test_a_triggered_id_never_equals_a_due_times_id() -> None:
    assert trigger_execution_id("nightly", at(2026, 1, 1) + 5) == "nightly-trigger-20260101T000000.005Z"


# -- planning ------------------------------------------------------------------------------------


def test_nothing_fires_before_the_first_due_time_and_the_plan_says_when_to_wake() -> None:
    result = plan(spec(), ScheduleState(cursor_ms=1 * SECOND), key="r", now_ms=5 * SECOND, running=False)
    assert result.actions == ()
    assert result.wake_at_ms == 10 * SECOND


def test_a_due_time_starts_its_execution_and_moves_the_cursor() -> None:
    result = plan(spec(), ScheduleState(cursor_ms=0), key="r", now_ms=10 * SECOND, running=False)
    assert result.actions == (Start(execution_id("r", 10 * SECOND), 10 * SECOND),)
    assert result.state.cursor_ms == 10 * SECOND
    assert result.state.last_due_ms == 10 * SECOND
    assert result.state.running_id == execution_id("r", 10 * SECOND)
    assert result.wake_at_ms == 20 * SECOND


def test_planning_again_at_the_same_instant_fires_nothing_twice() -> None:
    first = plan(spec(), ScheduleState(cursor_ms=0), key="r", now_ms=10 * SECOND, running=False)
    again = plan(spec(), first.state, key="r", now_ms=10 * SECOND, running=False)
    assert again.actions == ()


def test_a_lost_state_write_replans_the_same_execution_id() -> None:
    before = ScheduleState(cursor_ms=0)
    first = plan(spec(), before, key="r", now_ms=10 * SECOND, running=False)
    replayed = plan(spec(), before, key="r", now_ms=11 * SECOND, running=False)
    assert replayed.actions == first.actions


def test_skip_records_the_due_time_and_why_while_the_previous_one_runs() -> None:
    state = ScheduleState(cursor_ms=10 * SECOND, running_id="r-1")
    result = plan(spec(overlap="skip"), state, key="r", now_ms=20 * SECOND, running=True)
    assert result.actions == ()
    assert result.state.skipped == 1
    assert result.state.recent[-1].outcome is Outcome.SKIPPED
    assert "r-1 was still running" in result.state.recent[-1].reason


def test_allow_all_starts_while_the_previous_one_runs() -> None:
    state = ScheduleState(cursor_ms=10 * SECOND, running_id="r-1")
    result = plan(spec(overlap="allowAll"), state, key="r", now_ms=20 * SECOND, running=True)
    assert result.actions == (Start(execution_id("r", 20 * SECOND), 20 * SECOND),)


def test_cancel_running_cancels_the_previous_one_then_starts() -> None:
    state = ScheduleState(cursor_ms=10 * SECOND, running_id="r-1")
    result = plan(spec(overlap="cancelRunning"), state, key="r", now_ms=20 * SECOND, running=True)
    assert [type(action) for action in result.actions] == [Cancel, Start]
    assert result.actions[0] == Cancel("r-1", result.actions[0].reason)  # type: ignore[union-attr]


def test_buffer_one_keeps_one_fire_and_skips_the_rest_until_the_running_one_ends() -> None:
    buffering = spec(overlap="bufferOne")
    state = ScheduleState(cursor_ms=10 * SECOND, running_id="r-1")
    held = plan(buffering, state, key="r", now_ms=30 * SECOND, running=True)
    assert held.actions == ()
    assert held.state.buffered_due_ms == 20 * SECOND
    assert held.state.skipped == 1, "the second overlapping due time found the buffer full"
    released = plan(buffering, held.state, key="r", now_ms=31 * SECOND, running=False)
    assert released.actions == (Start(execution_id("r", 20 * SECOND), 20 * SECOND),)
    assert released.state.buffered_due_ms is None


def test_missed_due_times_past_the_catch_up_window_are_dropped_and_counted_in_one_record() -> None:
    result = plan(spec(catchupWindow="25s"), ScheduleState(cursor_ms=0), key="r", now_ms=100 * SECOND, running=False)
    started = [action.due_ms for action in result.actions if isinstance(action, Start)]
    assert started == [80 * SECOND], "the first within the window starts; the rest overlap it"
    assert result.state.missed == 7
    missed = [fire for fire in result.state.recent if fire.outcome is Outcome.MISSED]
    assert len(missed) == 1
    assert missed[0].count == 7


def test_a_year_of_outage_on_a_one_second_interval_is_one_bounded_step() -> None:
    year = 365 * 86_400 * SECOND
    result = plan(
        spec(interval="1s", catchupWindow="3s", overlap="allowAll"),
        ScheduleState(cursor_ms=0),
        key="r",
        now_ms=year,
        running=False,
    )
    assert result.state.missed == year // SECOND - 4
    assert len(result.actions) == 4


def test_catch_up_inside_the_window_is_fired_in_bounded_batches() -> None:
    allow = spec(interval="1s", catchupWindow="1h", overlap="allowAll")
    result = plan(allow, ScheduleState(cursor_ms=0), key="r", now_ms=1000 * SECOND, running=False, max_fires=100)
    assert len(result.actions) == 100
    assert result.wake_at_ms == 1000 * SECOND, "more is due: plan again at once"
    rest = plan(allow, result.state, key="r", now_ms=1000 * SECOND, running=True, max_fires=2000)
    assert len(rest.actions) == 900
    assert rest.wake_at_ms == 1001 * SECOND


def test_a_paused_schedule_fires_nothing_and_sleeps_until_changed() -> None:
    result = plan(
        spec(paused=True, note="holiday"), ScheduleState(cursor_ms=0), key="r", now_ms=99 * SECOND, running=False
    )
    assert result.actions == ()
    assert result.wake_at_ms is None


def test_settling_until_now_on_resume_never_fires_the_paused_due_times() -> None:
    resumed = ScheduleState(cursor_ms=0).settled_until(95 * SECOND)
    result = plan(spec(), resumed, key="r", now_ms=95 * SECOND, running=False)
    assert result.actions == ()
    assert next_fire(spec(), resumed, key="r") == (100 * SECOND, 100 * SECOND)


def test_jitter_delays_the_fire_but_not_the_due_time_or_the_id() -> None:
    jittered = spec(jitter="5s")
    delay = jitter_ms(jittered, "r", 10 * SECOND)
    assert delay > 0
    early = plan(jittered, ScheduleState(cursor_ms=0), key="r", now_ms=10 * SECOND + delay - 1, running=False)
    assert early.actions == ()
    assert early.wake_at_ms == 10 * SECOND + delay
    due = plan(jittered, ScheduleState(cursor_ms=0), key="r", now_ms=10 * SECOND + delay, running=False)
    assert due.actions == (Start(execution_id("r", 10 * SECOND), 10 * SECOND),)


def test_trigger_starts_now_whatever_the_pause_and_leaves_due_times_alone() -> None:
    state = ScheduleState(cursor_ms=5 * SECOND)
    result = trigger(spec(paused=True), state, key="r", now_ms=7 * SECOND, running=False)
    assert result.actions == (Start(trigger_execution_id("r", 7 * SECOND), 7 * SECOND),)
    assert result.state.cursor_ms == 5 * SECOND
    assert result.state.recent[-1].outcome is Outcome.TRIGGERED


def test_a_refused_start_is_recorded_as_failed_not_started() -> None:
    result = plan(spec(), ScheduleState(cursor_ms=0), key="r", now_ms=10 * SECOND, running=False)
    failed = start_failed(result.state, execution_id("r", 10 * SECOND), "workflow 'report' not found")
    assert (failed.started, failed.failed, failed.running_id) == (0, 1, None)
    assert failed.recent[-1].outcome is Outcome.FAILED


def test_the_state_reads_back_equal_from_its_stored_form() -> None:
    result = plan(spec(catchupWindow="25s"), ScheduleState(cursor_ms=0), key="r", now_ms=100 * SECOND, running=False)
    assert ScheduleState.from_data(result.state.to_data()) == result.state


@pytest.mark.parametrize("cron", ["0 0 L * *", "0 0 LW * *", "0 0 * * 5L", "0 0 * * MON#2", "0 9 * JAN MON-FRI"])
def test_the_cron_forms_the_reference_names_are_accepted(cron: str) -> None:
    assert next_due_ms(spec(cron=cron), at(2026, 1, 1)) is not None
