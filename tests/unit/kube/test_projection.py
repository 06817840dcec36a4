"""The Execution's status projection: bounded however long the history, large the output or many the steps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cerebelum_operator.engine import ExecutionPhase, ExecutionState
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.events import RecordedEvent
from cerebelum_operator.engine.state import ChildLink
from cerebelum_operator.kube.projection import (
    ProjectionLimits,
    condition,
    duration_text,
    merge_conditions,
    project_execution,
    recent_event,
    rfc3339,
)
from cerebelum_operator.kube.resources import ExecutionStatus
from cerebelum_operator.runtime.engine_service import LiveStep

from ..engine.simulator import Simulator

LIMITS = ProjectionLimits()
NOW_MS = 1_700_000_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A step name as long as the spec allows (63 characters).
LONG_NAME = "s" * 58


def project(
    state: ExecutionState,
    history: list[RecordedEvent],
    *,
    previous: list[dict[str, Any]] | None = None,
    now_ms: int = NOW_MS,
    generation: int | None = 7,
    limits: ProjectionLimits = LIMITS,
    live: dict[str, LiveStep] | None = None,
) -> dict[str, Any]:
    return project_execution(
        state,
        recent=[recent_event(r) for r in history],
        previous_conditions=previous or [],
        generation=generation,
        now_ms=now_ms,
        limits=limits,
        live=live,
    )


def run_all(sim: Simulator, names: list[str]) -> None:
    for name in names:
        sim.run(name)


def by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def json_size(value: Any, *, escaped: bool = True) -> int:
    """Bytes of `value` as JSON: ASCII-escaped (json.dumps' default) or UTF-8, as the API server stores it."""
    return len(json.dumps(value, ensure_ascii=escaped).encode())


def succeeded(names: list[str], output: Any = None) -> Simulator:
    sim = Simulator.start({"timeline": names})
    run_all(sim, names[:-1])
    sim.run(names[-1], cmd.OutcomeSuccess(output) if output is not None else None)
    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    return sim


# -- rfc3339 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (999, "1970-01-01T00:00:00.999Z"),
        (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
        (1_700_000_000_001, "2023-11-14T22:13:20.001Z"),
        (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
    ],
)
def test_rfc3339_writes_utc_with_milliseconds_and_a_z_suffix(ms: int, text: str) -> None:
    assert rfc3339(ms) == text


def test_rfc3339_of_no_time_is_none() -> None:
    assert rfc3339(None) is None


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_rfc3339_round_trips_every_millisecond_until_2100(ms: int) -> None:
    text = rfc3339(ms)
    assert text is not None and text.endswith("Z") and len(text) == len("2023-11-14T22:13:20.123Z")
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert (parsed - EPOCH) // timedelta(milliseconds=1) == ms


# -- steps ---------------------------------------------------------------------------------


def test_five_hundred_steps_show_only_the_last_limit_steps_and_count_the_rest() -> None:
    names = [f"step{i:03d}" for i in range(500)]
    sim = succeeded(names)
    status = project(sim.state, sim.history)
    assert len(status["steps"]) == LIMITS.steps
    assert status["stepsOmitted"] == 500 - LIMITS.steps
    assert [s["name"] for s in status["steps"]] == names[-LIMITS.steps :]
    assert all(s["phase"] == "Succeeded" and s["attempts"] == 1 for s in status["steps"])


def test_a_few_steps_are_all_shown_and_none_counted_as_omitted() -> None:
    sim = succeeded(["a", "b", "c"])
    status = project(sim.state, sim.history)
    assert [s["name"] for s in status["steps"]] == ["a", "b", "c"]
    assert status["stepsOmitted"] is None


def test_exactly_the_limit_of_steps_omits_nothing() -> None:
    limits = ProjectionLimits(steps=5)
    names = [f"s{i}" for i in range(5)]
    sim = succeeded(names)
    status = project(sim.state, sim.history, limits=limits)
    assert [s["name"] for s in status["steps"]] == names and status["stepsOmitted"] is None
    sim = succeeded([*names, "s5"])
    status = project(sim.state, sim.history, limits=limits)
    assert [s["name"] for s in status["steps"]] == ["s1", "s2", "s3", "s4", "s5"] and status["stepsOmitted"] == 1


def test_steps_show_their_attempts_and_times() -> None:
    spec = {"timeline": ["a"], "defaults": {"retry": {"maxAttempts": 3, "initialInterval": "1s", "jitter": 0}}}
    sim = Simulator.start(spec)
    sim.now_ms = NOW_MS
    sim.run("a", cmd.OutcomeFailure("Boom", "first"))
    sim.run("a")
    (step,) = project(sim.state, sim.history)["steps"]
    assert step["attempts"] == 2
    assert step["startedAt"] == rfc3339(NOW_MS)
    assert step["finishedAt"] == rfc3339(NOW_MS + 1000)


def test_a_step_that_succeeded_on_a_retry_shows_the_earlier_error_as_a_previous_attempt_s_not_as_its_own() -> None:
    spec = {"timeline": ["a"], "defaults": {"retry": {"maxAttempts": 3, "initialInterval": "1s", "jitter": 0}}}
    sim = Simulator.start(spec)
    sim.run("a", cmd.OutcomeFailure("Boom", "first"))

    (retrying,) = project(sim.state, sim.history)["steps"]
    assert retrying["phase"] == "Retrying"
    assert (retrying["error"], retrying["previousAttemptError"]) == (None, "Boom: first")

    sim.run("a")
    (step,) = project(sim.state, sim.history)["steps"]
    assert step["phase"] == "Succeeded"
    assert step["error"] is None, "kubectl describe would show a Succeeded step with an error"
    assert step["previousAttemptError"] == "Boom: first"


def test_a_failed_step_shows_its_error_as_its_own() -> None:
    sim = Simulator.start({"timeline": ["a"], "defaults": {"retry": {"maxAttempts": 1}}})
    sim.run("a", cmd.OutcomeFailure("Boom", "last"))
    (step,) = project(sim.state, sim.history)["steps"]
    assert (step["phase"], step["error"], step["previousAttemptError"]) == ("Failed", "Boom: last", None)


# -- output --------------------------------------------------------------------------------


def test_a_megabyte_output_is_left_out_with_its_exact_size() -> None:
    sim = succeeded(["a", "b"], output={"blob": "x" * 1_000_000})
    status = project(sim.state, sim.history)
    assert status["output"] is None
    assert status["outputTruncated"] is True
    assert status["outputBytes"] == 1_000_000 + len('{"blob":""}')
    assert json_size(status) < 64 * 1024


@pytest.mark.parametrize(("extra", "shown"), [(-1, True), (0, True), (1, False)])
def test_an_output_is_shown_up_to_the_cap_and_left_out_above_it(extra: int, shown: bool) -> None:
    limits = ProjectionLimits(output_bytes=100)
    size = 100 + extra
    output = {"b": "y" * (size - len('{"b":""}'))}
    sim = succeeded(["a"], output=output)
    status = project(sim.state, sim.history, limits=limits)
    assert status["outputBytes"] == size
    assert status["output"] == (output if shown else None)
    assert status["outputTruncated"] is (None if shown else True)


def test_an_execution_without_output_has_no_output_fields() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    status = project(sim.state, sim.history)
    assert (status["output"], status["outputTruncated"], status["outputBytes"]) == (None, None, None)


# -- errors --------------------------------------------------------------------------------


def test_a_long_step_error_is_cut_to_its_limit_and_marked() -> None:
    sim = Simulator.start({"timeline": ["a"], "defaults": {"retry": {"maxAttempts": 1}}})
    sim.run("a", cmd.OutcomeFailure("Boom", "z" * 50_000))
    status = project(sim.state, sim.history)
    (step,) = status["steps"]
    # Cut to bytes of UTF-8, the "…" (3 bytes) included.
    assert len(step["error"].encode()) == LIMITS.step_error_chars
    assert step["error"].startswith("Boom: zzz") and step["error"].endswith("…")
    assert len(status["error"].encode()) == LIMITS.error_chars and status["error"].endswith("…")


def test_a_long_cancel_reason_is_cut_in_the_error_and_in_the_condition() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    sim.send(cmd.Cancel("r" * 20_000))
    status = project(sim.state, sim.history)
    assert status["error"] == "r" * (LIMITS.error_chars - len("…".encode())) + "…"
    assert by_type(status)["Succeeded"]["message"] == status["error"]


def test_an_error_at_the_limit_is_kept_whole() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    sim.send(cmd.Cancel("r" * LIMITS.error_chars))
    status = project(sim.state, sim.history)
    assert status["error"] == "r" * LIMITS.error_chars


# -- recent events -------------------------------------------------------------------------


def test_recent_events_are_the_last_few_and_end_at_the_last_seq() -> None:
    names = [f"step{i:03d}" for i in range(300)]
    sim = succeeded(names)
    assert len(sim.history) > 900
    status = project(sim.state, sim.history)
    seqs = [e["seq"] for e in status["recentEvents"]]
    assert len(seqs) == LIMITS.recent_events
    assert seqs == list(range(sim.state.last_seq - LIMITS.recent_events + 1, sim.state.last_seq + 1))
    assert status["recentEvents"][-1]["type"] == "ExecutionSucceeded"
    assert status["recentEvents"][-2] == {
        "seq": sim.state.last_seq - 1,
        "at": rfc3339(sim.history[-2].at_ms),
        "type": "StepCompleted",
        "step": names[-1],
    }
    assert status["eventCount"] == sim.state.last_seq


def test_a_short_history_is_shown_whole() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    status = project(sim.state, sim.history)
    assert [e["seq"] for e in status["recentEvents"]] == [r.seq for r in sim.history]
    assert status["recentEvents"][-1]["seq"] == sim.state.last_seq


# -- size in the worst case ----------------------------------------------------------------


@pytest.mark.parametrize("ending", ["succeeded", "failed"])
# Caps count bytes of UTF-8 JSON: characters that JSON escapes, or that UTF-8 spells in several
# bytes, take more of them.
@pytest.mark.parametrize("char", ["x", '"', "\x01", "\U0001f600"])
def test_the_status_stays_small_in_the_worst_case(ending: str, char: str) -> None:
    """100 steps with the longest names, each retried after a huge error, 1000+ events, a result at the cap."""
    names = [f"{LONG_NAME}{i:05d}" for i in range(100)]
    spec = {"timeline": names, "defaults": {"retry": {"maxAttempts": 2, "jitter": 0}}}
    huge = char * 100_000
    sim = Simulator.start(spec, {"input": huge})
    for name in names:
        sim.run(name, cmd.OutcomeFailure("Boom", huge))
        if name != names[-1]:
            sim.run(name)
    if ending == "succeeded":
        sim.run(names[-1], cmd.OutcomeSuccess(char * ((LIMITS.output_bytes - 2) // (len(json.dumps(char)) - 2))))
        assert LIMITS.output_bytes - 12 < json_size(sim.state.output) <= LIMITS.output_bytes
    else:
        sim.run(names[-1], cmd.OutcomeFailure("Boom", huge))
        assert sim.state.phase == ExecutionPhase.FAILED
    assert len(sim.history) > 400
    status = project(sim.state, sim.history)
    assert status["steps"], "some steps always fit beside the other fields at their caps"
    assert len(status["steps"]) + status["stepsOmitted"] == 100
    assert all((step["error"] or step["previousAttemptError"]) is not None for step in status["steps"])
    assert (status["output"] is not None) is (ending == "succeeded")
    assert json_size(status, escaped=False) <= LIMITS.status_bytes  # as the API server stores it
    if char.isascii():  # escaped to ASCII, a 4-byte character takes 12 (what the budget does not count)
        assert json_size(status) <= LIMITS.status_bytes


def test_the_status_stays_bounded_however_many_steps_run_at_once() -> None:
    names = [f"{LONG_NAME}{i:05d}" for i in range(1000)]
    sim = Simulator.start({"timeline": [names]})
    assert len(sim.state.current_steps()) == 1000
    status = project(sim.state, sim.history)
    assert len(status["steps"]) + status["stepsOmitted"] == 1000 and status["stepsOmitted"] >= 1000 - LIMITS.steps
    assert json_size(status) <= LIMITS.status_bytes
    assert len(status["currentStep"]) <= LIMITS.current_step_chars
    assert status["currentStep"].startswith(names[0]) and status["currentStep"].endswith(" more)")
    shown = status["currentStep"].rsplit(" (+", 1)[0].split(", ")
    assert status["currentStep"].endswith(f"(+{1000 - len(shown)} more)")


def test_a_ten_thousand_item_fan_out_is_one_small_step_entry_that_its_items_do_not_change() -> None:
    spec = {"timeline": ["fan"], "steps": {"fan": {"forEach": {"items": "input.items", "concurrency": 1000}}}}
    sim = Simulator.start(spec, {"items": [LONG_NAME] * 10_000})
    before = project(sim.state, sim.history[-1:])
    live = sim.state.fan_outs["fan"].live
    for task in list(live.values())[:500]:
        sim.send(cmd.TaskStarted(task.token, "w1"))
        sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess(LONG_NAME), worker_id="w1"))
    after = project(sim.state, sim.history[-1:])

    assert [step["name"] for step in after["steps"]] == ["fan"] and after["steps"][0]["phase"] == "Running"
    assert json_size(after) <= LIMITS.status_bytes
    unchanged = ("steps", "currentStep", "phase", "conditions")
    assert {k: before[k] for k in unchanged} == {k: after[k] for k in unchanged}, "the items are not listed"


# -- what the execution waits for ----------------------------------------------------------


def test_a_pending_approval_shows_its_step_when_it_was_requested_and_its_timeout() -> None:
    sim = Simulator.start({"timeline": ["go", "after"], "steps": {"go": {"approval": {"timeout": "1h"}}}})
    status = project(sim.state, sim.history)
    assert status["phase"] == "WaitingForApproval"
    assert status["currentStep"] == "go"
    assert status["pendingApproval"] == {
        "step": "go",
        "requestedAt": rfc3339(sim.now_ms),
        "timeoutAt": rfc3339(sim.now_ms + 3_600_000),
    }
    assert status["wakeAt"] is None and status["finishedAt"] is None


def test_a_sleeping_execution_shows_when_it_wakes() -> None:
    sim = Simulator.start({"timeline": ["a", "b"]})
    sim.run("a", cmd.OutcomeSleep(86_400_000, {"slept": True}))
    status = project(sim.state, sim.history)
    assert status["phase"] == "Sleeping"
    assert status["wakeAt"] == rfc3339(sim.now_ms + 86_400_000)
    assert status["pendingApproval"] is None


def test_a_finished_execution_shows_when_it_started_and_finished() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    started = sim.now_ms
    sim.now_ms += 5_000
    sim.run("a")
    status = project(sim.state, sim.history)
    assert status["startedAt"] == rfc3339(started)
    assert status["finishedAt"] == rfc3339(started + 5_000)
    assert status["currentStep"] is None


@pytest.mark.parametrize(
    "scenario", ["running", "approval", "sleeping", "succeeded", "failed", "cancelled", "many steps"]
)
def test_the_status_matches_the_execution_status_schema(scenario: str) -> None:
    sim = Simulator.start({"timeline": ["a", "go", "b"], "steps": {"go": {"approval": {"timeout": "1h"}}}})
    match scenario:
        case "approval":
            sim.run("a")
        case "sleeping":
            sim.run("a", cmd.OutcomeSleep(1000, None))
        case "succeeded":
            sim.run("a")
            sim.send(cmd.Approve("go", "alice"))
            sim.run("b", cmd.OutcomeSuccess({"big": "x" * 10_000}))
        case "failed":
            sim.run("a")
            sim.send(cmd.Reject("go", "bob", "no"))
        case "cancelled":
            sim.send(cmd.Cancel())
        case "many steps":
            sim = succeeded([f"s{i}" for i in range(100)])
    status = project(sim.state, sim.history)
    parsed = ExecutionStatus.model_validate(status)
    assert parsed.model_dump(by_alias=True) == status


# -- conditions ----------------------------------------------------------------------------


def test_conditions_keep_their_transition_time_while_their_status_holds_and_move_when_it_changes() -> None:
    sim = Simulator.start({"timeline": ["a", "b"]})
    first = project(sim.state, sim.history, now_ms=NOW_MS)
    assert by_type(first)["Succeeded"]["status"] == "Unknown"
    assert by_type(first)["Succeeded"]["lastTransitionTime"] == rfc3339(NOW_MS)

    sim.run("a")
    second = project(sim.state, sim.history, previous=first["conditions"], now_ms=NOW_MS + 60_000)
    assert by_type(second)["Succeeded"]["lastTransitionTime"] == rfc3339(NOW_MS)
    assert by_type(second)["Accepted"]["lastTransitionTime"] == rfc3339(NOW_MS)

    sim.run("b")
    third = project(sim.state, sim.history, previous=second["conditions"], now_ms=NOW_MS + 120_000)
    assert by_type(third)["Succeeded"]["status"] == "True"
    assert by_type(third)["Succeeded"]["lastTransitionTime"] == rfc3339(NOW_MS + 120_000)
    assert by_type(third)["Accepted"]["lastTransitionTime"] == rfc3339(NOW_MS)


def _ended(phase: str) -> Simulator:
    sim = Simulator.start({"timeline": ["a"], "defaults": {"retry": {"maxAttempts": 1}}})
    match phase:
        case "Succeeded":
            sim.run("a")
        case "Failed":
            sim.run("a", cmd.OutcomeFailure("Boom", "it broke"))
        case "Cancelled":
            sim.send(cmd.Cancel("user asked"))
    assert sim.state.phase == phase
    return sim


@pytest.mark.parametrize(
    ("phase", "status", "message"),
    [
        ("Succeeded", "True", "finished after 1 step in 0 ms"),
        ("Failed", "False", "step 'a' failed: Boom: it broke"),
        ("Cancelled", "False", "user asked"),
    ],
)
def test_a_terminal_phase_sets_the_succeeded_condition_with_a_message(phase: str, status: str, message: str) -> None:
    sim = _ended(phase)
    projected = project(sim.state, sim.history, generation=4)
    succeeded_condition = by_type(projected)["Succeeded"]
    assert projected["phase"] == phase
    assert succeeded_condition["status"] == status
    assert succeeded_condition["reason"] == phase
    assert succeeded_condition["message"].startswith(message), succeeded_condition["message"]
    assert succeeded_condition["observedGeneration"] == 4
    assert projected["observedGeneration"] == 4
    assert by_type(projected)["Accepted"]["status"] == "True"


def test_the_succeeded_condition_says_how_many_steps_finished_and_how_long_it_took() -> None:
    sim = Simulator.start({"timeline": ["a", ["b", "c"]]})
    sim.now_ms += 4_200
    run_all(sim, ["a", "b", "c"])
    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert by_type(project(sim.state, sim.history))["Succeeded"]["message"] == "finished after 3 steps in 4.2 s"


def test_an_unfinished_execution_s_condition_says_what_it_does_or_waits_for_and_changes_with_the_phase_only() -> None:
    spec = {
        "timeline": ["a", ["b", "c"], "go", "d"],
        "steps": {"go": {"approval": {}}},
        "defaults": {"retry": {"maxAttempts": 3, "initialInterval": "1s", "jitter": 0}},
    }
    sim = Simulator.start(spec)

    def message() -> str:
        return str(by_type(project(sim.state, sim.history))["Succeeded"]["message"])

    running = "running"
    assert message() == running
    sim.run("a", cmd.OutcomeFailure("Boom", "first"))
    assert message() == running
    run_all(sim, ["a", "b", "c"])
    assert message() == "waiting for an Approval of step go"
    sim.send(cmd.Approve("go", "alice"))
    sim.run("d", cmd.OutcomeSleep(60_000, None))
    assert message() == f"sleeping until {rfc3339(sim.now_ms + 60_000)}"


@pytest.mark.parametrize(
    "scenario", ["running", "approval", "sleeping", "succeeded", "failed", "cancelled", "many steps"]
)
def test_every_condition_has_a_message(scenario: str) -> None:
    sim = Simulator.start({"timeline": ["a", "go", "b"], "steps": {"go": {"approval": {"timeout": "1h"}}}})
    match scenario:
        case "approval":
            sim.run("a")
        case "sleeping":
            sim.run("a", cmd.OutcomeSleep(1000, None))
        case "succeeded":
            sim.run("a")
            sim.send(cmd.Approve("go", "alice"))
            sim.run("b")
        case "failed":
            sim.run("a")
            sim.send(cmd.Reject("go", "bob", "no"))
        case "cancelled":
            sim.send(cmd.Cancel())
        case "many steps":
            sim = succeeded([f"s{i}" for i in range(100)])
    conditions = project(sim.state, sim.history)["conditions"]
    assert {c["type"] for c in conditions} == {"Accepted", "Succeeded"}
    assert all(c["message"] for c in conditions), conditions


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0 ms"),
        (850, "850 ms"),
        (4_200, "4.2 s"),
        (59_949, "59.9 s"),
        (60_000, "1 min"),
        (200_000, "3 min 20 s"),
        (7_500_000, "2 h 5 min"),
        (3 * 86_400_000 + 4 * 3_600_000 + 5_000, "3 d 4 h"),
        (-5, "0 ms"),
    ],
)
def test_durations_read_as_a_person_would_say_them(ms: int, text: str) -> None:
    assert duration_text(ms) == text


def test_an_unfinished_execution_has_an_unknown_succeeded_condition_named_after_its_phase() -> None:
    sim = Simulator.start({"timeline": ["go"], "steps": {"go": {"approval": {}}}})
    succeeded_condition = by_type(project(sim.state, sim.history))["Succeeded"]
    assert (succeeded_condition["status"], succeeded_condition["reason"]) == ("Unknown", "WaitingForApproval")


def test_merging_conditions_keeps_other_types_and_takes_the_new_reason_and_message() -> None:
    ready = condition("Ready", "True", "Compiled", now_ms=1_000)
    old = condition("Succeeded", "Unknown", "Running", now_ms=2_000)
    new = condition("Succeeded", "Unknown", "Sleeping", "until tomorrow", now_ms=3_000)
    merged = merge_conditions([ready, old], [new])
    assert merged == [ready, {**new, "lastTransitionTime": rfc3339(2_000)}]


def test_merging_a_changed_status_takes_the_new_transition_time() -> None:
    old = condition("Succeeded", "Unknown", "Running", now_ms=2_000)
    new = condition("Succeeded", "False", "Failed", "boom", now_ms=3_000)
    assert merge_conditions([old], [new]) == [new]


def test_merging_into_no_conditions_adds_the_updates() -> None:
    new = condition("Accepted", "True", "Started", now_ms=3_000)
    assert merge_conditions([], [new]) == [new]


def test_a_running_step_shows_its_latest_heartbeat_progress_cut_to_its_limit() -> None:
    sim = Simulator.start({"timeline": ["batch", "report"]})
    sim.send(cmd.TaskStarted(sim.task("batch").token, "w1"))
    steps = project(sim.state, sim.history, live={"batch": LiveStep(progress={"done": 40})})["steps"]
    assert [s.get("progress") for s in steps] == ['{"done":40}']

    huge = {"rows": list(range(1000))}
    (step,) = project(sim.state, sim.history, live={"batch": LiveStep(progress=huge)})["steps"]
    assert len(step["progress"]) <= LIMITS.progress_chars + 40
    assert step["progress"].startswith('{"rows":[0,1,2')
    ExecutionStatus.model_validate(project(sim.state, sim.history, live={"batch": LiveStep(progress=huge)}))


def test_a_step_without_progress_shows_none() -> None:
    sim = Simulator.start({"timeline": ["batch"]})
    sim.send(cmd.TaskStarted(sim.task("batch").token, "w1"))
    (step,) = project(sim.state, sim.history)["steps"]
    assert step["progress"] is None


def test_a_loop_cut_at_its_bound_shows_in_recent_events_and_in_the_succeeded_condition() -> None:
    spec = {"timeline": ["a", "b"], "branch": {"b": [{"when": "result.b == true", "goto": "a", "maxIterations": 1}]}}
    sim = Simulator.start(spec)
    run_all(sim, ["a", "b", "a", "b"])

    status = project(sim.state, sim.history)

    assert {"type": "JumpLimitReached", "step": "b"}.items() <= status["recentEvents"][-2].items()
    (succeeded,) = [c for c in status["conditions"] if c["type"] == "Succeeded"]
    assert succeeded["status"] == "True"
    assert succeeded["message"].endswith("; loop branch.b[0] cut at maxIterations 1")
    ExecutionStatus.model_validate(status)


# -- the whole status within 16 KiB (issue 16) ----------------------------------------------


def test_a_thousand_steps_with_long_names_errors_and_progress_make_a_status_under_16_kib() -> None:
    names = [f"{LONG_NAME}{i:04d}" for i in range(1000)]
    spec = {
        "timeline": [names[:500], names[500:]],
        "diverge": {n: [{"when": "true", "then": "continue"}] for n in names},
    }
    sim = Simulator.start(spec)
    for name in names[:500]:
        sim.run(name, cmd.OutcomeFailure("Boom", "é" * 1000))  # continued past: Failed, with an error
    live = {name: LiveStep(progress={"done": "x" * 4000}, waiting_hint=None) for name in names[500:]}

    status = project(sim.state, sim.history, live=live)

    assert json_size(status, escaped=False) <= 16 * 1024  # UTF-8, as the API server stores it
    assert status["stepsOmitted"] == 1000 - len(status["steps"])
    shown = {s["phase"] for s in status["steps"]}
    assert shown == {"Scheduled"}, "running steps are kept, settled ones left out first"


def test_a_status_within_the_budget_is_left_whole() -> None:
    sim = succeeded(["a", "b", "c"])
    assert project(sim.state, sim.history)["stepsOmitted"] is None


def test_an_execution_running_its_compensations_says_how_it_is_ending() -> None:
    spec = {"timeline": ["a", "b"], "steps": {"a": {"compensate": "undo"}}, "defaults": {"retry": {"maxAttempts": 1}}}
    sim = Simulator.start(spec)
    sim.run("a")
    sim.run("b", cmd.OutcomeFailure("Boom", "no"))

    status = project(sim.state, sim.history)

    assert status["phase"] == "Running" and status["currentStep"] == "undo"
    message = by_type(status)["Succeeded"]["message"]
    assert message == "ending as Failed: running its compensation and finally steps"


# -- parents, children and continue-as-new chains (issue 17) --------------------------------


def test_ten_thousand_children_with_the_longest_names_beside_a_thousand_steps_keep_the_status_under_16_kib() -> None:
    names = [f"{LONG_NAME}{i:04d}" for i in range(1000)]
    sim = Simulator.start({"timeline": [names]})
    state = sim.state.clone()
    step, workflow = "c" * 63, "w" * 253
    state.children = [
        ChildLink(step, f"{'x' * 100}:{i:027d}", workflow, phase="Running" if i % 2 else "Succeeded")
        for i in range(10_000)
    ]
    state.live_children = {f"{step}{i}": i for i in range(1, 10_000, 2)}
    state.parent_id, state.parent_step = "p" * 128, step

    status = project_execution(
        state,
        recent=[recent_event(r) for r in sim.history],
        previous_conditions=[],
        generation=1,
        now_ms=NOW_MS,
        object_name="o" * 253,
        parent_name="q" * 253,
    )

    assert json_size(status, escaped=False) <= LIMITS.status_bytes
    assert 0 < len(status["children"]) <= LIMITS.children
    assert {child["phase"] for child in status["children"]} == {"Running"}, "running children are shown first"
    assert status["childCount"] == 10_000
    assert status["childrenOmitted"] == 10_000 - len(status["children"])
    assert all(len(child["name"]) <= 253 for child in status["children"])
    assert status["parent"] == {"name": "q" * 253, "executionId": "p" * 128, "step": step}
    ExecutionStatus.model_validate(status)


def test_a_later_run_of_a_chain_shows_the_first_run_s_id_its_own_id_and_its_number() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    state = sim.state.clone()
    state.execution_id, state.first_run_id, state.run = "uid-1:run-3", "uid-1", 3

    status = project(state, sim.history)

    assert (status["executionId"], status["runId"], status["run"]) == ("uid-1", "uid-1:run-3", 3)


def test_an_execution_waiting_for_a_signal_says_which_in_its_succeeded_condition() -> None:
    sim = Simulator.start({"timeline": ["w"], "steps": {"w": {"signal": {"name": "ready"}}}})

    status = project(sim.state, sim.history)

    assert status["phase"] == "WaitingForSignal"
    (succeeded,) = [c for c in status["conditions"] if c["type"] == "Succeeded"]
    assert succeeded["message"] == "waiting for a Signal named ready"


# -- pauses (issue 19) ---------------------------------------------------------------------


def test_a_paused_execution_shows_phase_paused_and_says_why_and_who_in_its_condition() -> None:
    sim = Simulator.start({"timeline": ["a", "b"]})
    sim.send(cmd.Pause("database maintenance", "alice"))

    status = project(sim.state, sim.history)

    assert status["phase"] == "Paused"
    assert by_type(status)["Succeeded"]["message"] == "paused: database maintenance (by alice)"
    assert [s["phase"] for s in status["steps"] if s["name"] == "a"] == ["Held"]


def test_an_execution_waiting_for_a_slot_shows_queued_and_its_key() -> None:
    sim = Simulator.start({"timeline": ["a"], "flowControl": {"key": "input.c", "concurrency": 1}}, {"c": "acme"})

    status = project(sim.state, sim.history)

    assert status["phase"] == "Queued"
    assert (
        "queued: waiting for a slot: at most 1 execution runs at once for key 'acme'"
        in by_type(status)["Succeeded"]["message"]
    )
