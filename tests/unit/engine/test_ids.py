"""The engine's identifiers: typed, and written byte for byte as earlier releases wrote them.

Task tokens are in workers' hands and timer and dead-letter ids are keys of store rows, so an
upgrade must read every string an earlier release wrote (the strings below are in that format).
"""

from __future__ import annotations

import pytest

from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine import parse_token
from cerebelum_operator.engine.ids import (
    ApprovalRejection,
    ApprovalTimeout,
    InvalidId,
    RejectedResult,
    TaskToken,
    TimerId,
    TimerKind,
    parse_attempt_ref,
    parse_dead_letter_id,
)

from .simulator import Simulator


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ex1/a/1/0/2", TaskToken("ex1", "a", 1, 0, 2)),
        ("3f9c2a/charge.card-v2/12/3/4567", TaskToken("3f9c2a", "charge.card-v2", 12, 3, 4567)),
        # An execution id holding '/' (none does today): the fixed fields are read from the right.
        ("team/run-7/a/1/0/2", TaskToken("team/run-7", "a", 1, 0, 2)),
    ],
)
def test_a_task_token_written_by_an_earlier_release_parses_and_encodes_to_the_same_bytes(
    text: str, expected: TaskToken
) -> None:
    assert TaskToken.parse(text) == expected
    assert expected.encode() == text
    assert parse_token(text) == (expected.execution_id, expected.step, expected.attempt, expected.poll, expected.seq)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ex1/sleep/a/3", TimerId("ex1", TimerKind.SLEEP, "a", 3)),
        ("ex1/approval/gate/2", TimerId("ex1", TimerKind.APPROVAL, "gate", 2)),
        ("ex1/schedule-to-start/a/2", TimerId("ex1", TimerKind.SCHEDULE_TO_START, "a", 2)),
    ],
)
def test_timer_ids_parse_and_encode_to_the_same_bytes(text: str, expected: TimerId) -> None:
    assert TimerId.parse(text) == expected
    assert expected.encode() == text


def test_dead_letter_ids_are_a_task_token_or_a_rejected_result() -> None:
    assert parse_dead_letter_id("ex1/a/3/0/9") == TaskToken("ex1", "a", 3, 0, 9)
    assert parse_dead_letter_id("ex1/a/3/result/9") == RejectedResult("ex1", "a", 3, 9)
    assert RejectedResult("ex1", "a", 3, 9).encode() == "ex1/a/3/result/9"


def test_what_a_failed_approval_names_instead_of_a_token_parses_back() -> None:
    timed_out = "approval:ex1/approval/gate/2"
    rejected = "approval:gate:5"
    assert parse_attempt_ref(timed_out) == ApprovalTimeout(TimerId("ex1", TimerKind.APPROVAL, "gate", 2))
    assert parse_attempt_ref(rejected) == ApprovalRejection("gate", 5)
    assert parse_attempt_ref(timed_out).encode() == timed_out and parse_attempt_ref(rejected).encode() == rejected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a/b",
        "ex//1/0/2",
        "ex/a/x/0/2",
        "ex/a/01/0/2",
        "ex/a/ 1/0/2",
        "ex/a/+1/0/2",
        "ex/a/1_0/0/2",
        "ex/a/\u0661/0/2",
    ],
)
def test_a_malformed_task_token_is_refused_naming_the_problem(text: str) -> None:
    with pytest.raises(InvalidId, match=r"task token|not a decimal count"):
        TaskToken.parse(text)


def test_an_unknown_timer_kind_is_refused() -> None:
    with pytest.raises(InvalidId, match="unknown timer kind 'nap'"):
        TimerId.parse("ex1/nap/a/3")


def test_decide_writes_every_id_in_the_format_earlier_releases_wrote() -> None:
    spec = {
        "timeline": ["a", "gate", "b"],
        "steps": {"gate": {"approval": {"timeout": "1h"}}},
        "diverge": {"b": [{"match": {"result": {"again": True}}, "then": "retry"}]},
        "defaults": {"retry": {"maxAttempts": 1}},
    }
    sim = Simulator.start(spec)
    assert list(sim.tasks) == ["ex1/a/1/0/2"]
    sim.run("a", cmd.OutcomeSleep(60_000, {"a": 1}))
    assert list(sim.timers) == ["ex1/sleep/a/4"]  # the seq of the step's StepCompleted
    sim.fire_timers()
    assert list(sim.timers) == ["ex1/approval/gate/7"]  # the seq of the ApprovalRequested
    sim.fire_timers()
    failed = [r.event for r in sim.history if r.event.kind == "StepFailed"]
    assert [e.token for e in failed] == ["approval:ex1/approval/gate/7"]  # type: ignore[attr-defined]

    rejecting = Simulator.start(spec)
    rejecting.run("a")
    rejecting.send(cmd.Reject("gate", "ann"))
    failed = [r.event for r in rejecting.history if r.event.kind == "StepFailed"]
    assert [e.token for e in failed] == ["approval:gate:6"]  # type: ignore[attr-defined]

    retried = Simulator.start({"timeline": ["b"], "diverge": spec["diverge"], "defaults": spec["defaults"]})
    retried.run("b", cmd.OutcomeSuccess({"again": True}))
    assert retried.dead_letters == {"ex1/b/1/result/5"}  # the seq of the StepDeadLettered
