"""A schedule's fire times across any pattern of engine outages, on the pure core.

The engine runs for a while, is down for a while, comes back, and so on; at each moment it is up
it plans as the schedule service does (at each wake-up time, and at once when a batch was cut
short). Sometimes a process dies after starting executions and before storing the new state.
Whatever the pattern, the due times that fire (with overlap allowAll or cancelRunning; under
skip and bufferOne a subset, since due times caught up together overlap each other) are exactly those whose fire time was reached while
the engine was up, or that the engine met within the catch-up window after coming back; each
fires under the id derived from it, and the state never asks for one twice unless its write was lost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from cerebelum_operator.engine.schedule_spec import ScheduleSpec, jitter_ms, next_due_ms
from cerebelum_operator.engine.schedules import ScheduleState, Start, execution_id, plan

KEY = "team-a/report"
SECOND = 1000
MINUTE = 60 * SECOND


@dataclass(frozen=True)
class Period:
    up_ms: int
    down_ms: int
    write_lost: bool  # the process died after its last plan's starts, before storing the state


def periods(unit: int, longest: int) -> st.SearchStrategy[list[Period]]:
    period = st.builds(
        Period,
        up_ms=st.integers(0, longest).map(lambda n: n * unit),
        down_ms=st.integers(0, longest).map(lambda n: n * unit + n % 7),
        write_lost=st.booleans(),
    )
    return st.lists(period, min_size=1, max_size=6)


def run(spec: ScheduleSpec, pattern: list[Period], *, max_fires: int) -> tuple[Counter[str], list[tuple[int, int]]]:
    """Start requests per id, and the engine's up intervals, over the outage pattern."""
    stored = ScheduleState(cursor_ms=0)
    requested: Counter[str] = Counter()
    up: list[tuple[int, int]] = []
    now = 0
    for period in pattern:
        begin, end = now, now + period.up_ms
        up.append((begin, end))
        before_last = stored
        t = begin
        while True:
            before_last = stored
            planned = plan(spec, stored, key=KEY, now_ms=t, running=False, max_fires=max_fires)
            for action in planned.actions:
                if isinstance(action, Start):  # cancelRunning's cancels go to executions that ended here
                    requested[action.execution_id] += 1
            stored = planned.state
            if planned.wake_at_ms is None or planned.wake_at_ms > end:
                break
            t = max(t, planned.wake_at_ms)
        if period.write_lost:
            stored = before_last
        now = end + period.down_ms
    return requested, up


def expected_fires(spec: ScheduleSpec, up: list[tuple[int, int]]) -> set[str]:
    """Due times whose fire time the engine met, while up, or on coming back within the window."""
    fired: set[str] = set()
    horizon = up[-1][1]
    due = next_due_ms(spec, 0)
    while due is not None and due <= horizon:
        fire_at = due + jitter_ms(spec, KEY, due)
        met = next((max(begin, fire_at) for begin, end in up if end >= fire_at), None)
        if met is not None and met - fire_at <= spec.catchup_window_ms:
            fired.add(execution_id(KEY, due))
        due = next_due_ms(spec, due)
    return fired


@given(
    interval_s=st.integers(1, 30),
    window_s=st.integers(0, 90),
    jitter_s=st.integers(0, 20),
    overlap=st.sampled_from(["allowAll", "skip", "bufferOne", "cancelRunning"]),
    pattern=periods(SECOND, 200),
    max_fires=st.integers(1, 5),
)
def test_interval_fires_are_exactly_the_due_times_met_within_the_window_each_once(
    interval_s: int, window_s: int, jitter_s: int, overlap: str, pattern: list[Period], max_fires: int
) -> None:
    spec = ScheduleSpec.model_validate(
        {
            "workflow": "report",
            "interval": f"{interval_s}s",
            "catchupWindow": f"{window_s}s",
            "jitter": f"{jitter_s}s",
            "overlap": overlap,
        }
    )
    requested, up = run(spec, pattern, max_fires=max_fires)
    if overlap in ("allowAll", "cancelRunning"):
        assert set(requested) == expected_fires(spec, up)
    else:  # due times caught up together overlap the first of them: skip and bufferOne keep fewer
        assert set(requested) <= expected_fires(spec, up)
    if not any(period.write_lost for period in pattern):
        assert all(count == 1 for count in requested.values()), "a stored state never asks for a due time twice"


@given(
    cron=st.sampled_from(["* * * * *", "*/7 * * * *", "0,30 * * * *", "15 */2 * * *"]),
    window_m=st.integers(0, 90),
    pattern=periods(MINUTE, 120),
)
def test_cron_fires_are_exactly_the_due_times_met_within_the_window_each_once(
    cron: str, window_m: int, pattern: list[Period]
) -> None:
    spec = ScheduleSpec.model_validate(
        {
            "workflow": "report",
            "cron": cron,
            "timezone": "Europe/Paris",
            "catchupWindow": f"{window_m}m",
            "overlap": "allowAll",
        }
    )
    requested, up = run(spec, pattern, max_fires=3)
    assert set(requested) == expected_fires(spec, up)
    if not any(period.write_lost for period in pattern):
        assert all(count == 1 for count in requested.values())


@given(key=st.from_regex(r"\A([a-z0-9]{1,63}/)?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\Z"), due_s=st.integers(0, 10**10))
def test_ids_are_valid_execution_ids_and_one_per_schedule_and_due_time(key: str, due_s: int) -> None:
    first = execution_id(key, due_s * SECOND)
    assert first == execution_id(key, due_s * SECOND + 999), "a due time is a whole second"
    assert len(first) <= 128
    assert all(c.isalnum() or c in "_.:-" for c in first)
    assert first != execution_id(key, (due_s + 1) * SECOND)
