"""The timeline of an execution: one lane per step, a bar per span of waiting, running or retrying."""

from __future__ import annotations

from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.web.timeline import MAX_BARS_PER_LANE, timeline
from tests.unit.engine.simulator import Simulator


def test_a_step_that_ran_once_has_a_queued_and_a_running_bar() -> None:
    sim = Simulator.start({"timeline": ["a", "b"]})
    sim.now_ms += 5
    sim.run("a")
    t = timeline(sim.history, now_ms=sim.now_ms + 100)
    lane = t.lanes[0]
    assert lane.step == "a"
    assert [bar.kind for bar in lane.bars] == ["queued", "running"]
    assert lane.bars[0].end_ms - lane.bars[0].start_ms == 5
    assert lane.bars[1].outcome == "succeeded" and not lane.bars[1].open


def test_a_retry_shows_its_backoff_between_the_attempts() -> None:
    sim = Simulator.start({"timeline": ["a"], "steps": {"a": {"retry": {"maxAttempts": 2, "initialInterval": "1s"}}}})
    task = sim.task("a")
    sim.send(cmd.TaskStarted(task.token, "w1"))
    sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeFailure("Boom", "no", retryable=True), worker_id="w1"))
    sim.run("a")
    kinds = [bar.kind for bar in timeline(sim.history, now_ms=sim.now_ms).lanes[0].bars]
    assert kinds == ["queued", "running", "retry-wait", "queued", "running"]


def test_what_still_runs_ends_at_now_and_is_marked_open() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    task = sim.task("a")
    sim.send(cmd.TaskStarted(task.token, "w1"))
    t = timeline(sim.history, now_ms=sim.now_ms + 2_000)
    running = t.lanes[0].bars[-1]
    assert running.kind == "running" and running.open and running.end_ms == sim.now_ms + 2_000


def test_an_approval_wait_is_a_bar_that_names_the_approver() -> None:
    sim = Simulator.start({"timeline": ["ok"], "steps": {"ok": {"approval": {"timeout": "1h"}}}})
    sim.now_ms += 60_000
    sim.send(cmd.Approve("ok", "alice"))
    bars = timeline(sim.history, now_ms=sim.now_ms).lanes[0].bars
    assert [(b.kind, b.outcome) for b in bars] == [("approval", "approved by alice")]
    assert bars[0].end_ms - bars[0].start_ms == 60_000


def test_a_lane_keeps_a_bounded_number_of_bars_and_counts_the_rest() -> None:
    sim = Simulator.start({"timeline": ["a"], "branch": {"a": [{"when": "true", "goto": "a", "maxIterations": 100}]}})
    for _ in range(60):
        sim.run("a")
    lane = timeline(sim.history, now_ms=sim.now_ms).lanes[0]
    assert len(lane.bars) == MAX_BARS_PER_LANE
    assert lane.hidden == 121 - MAX_BARS_PER_LANE  # 60 runs of two bars, and the 61st still queued


def test_the_axis_spans_the_history_and_scales_into_the_width() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    sim.now_ms += 1_000
    sim.run("a")
    t = timeline(sim.history, now_ms=sim.now_ms)
    assert t.scale(t.start_ms, 900) == 0
    assert t.scale(t.end_ms, 900) == 900
