"""Workflow code driven through synthetic histories: the commands each activation issues, and replay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cerebelum import HistoryEvent
from cerebelum.workflow import NonDeterminismError, WorkflowContext, WorkflowStepError, replay
from cerebelum.workflow.definition import WorkflowDefinition
from cerebelum.workflow.history import parse_events, parse_time
from cerebelum.workflow.replay import Replayer

from . import workflows as w
from .histories import Command, History, Simulation, default_respond


def first_activation(fn: Callable[..., Any], input: Any = None) -> list[Command]:
    history = History(input)
    _, started = history.task_started()
    replayer = Replayer(WorkflowDefinition(fn.__name__, fn), execution_id="ex-1", workflow="wf")
    try:
        replayer.feed(parse_events(history.events))
        return replayer.run_live(started)
    finally:
        replayer.close()


def test_the_first_activation_issues_the_first_step_with_its_args_and_options() -> None:
    commands = first_activation(w.two_steps, {"id": "o-1", "amount": 5})
    assert commands == [
        {
            "type": "step",
            "id": 1,
            "function": "charge",
            "args": {"order": "o-1"},
            "timeout": "30s",
            "retry": {"maxAttempts": 2},
        }
    ]


def test_a_workflow_runs_to_its_output_and_its_history_replays() -> None:
    sim = Simulation(w.two_steps, input={"id": "o-1", "amount": 5})
    sim.run()
    assert [c["function"] for c in sim.all_commands() if c["type"] == "step"] == ["charge", "ship"]
    assert sim.outcome == {
        "type": "complete",
        "output": {
            "first": {"function": "charge", "args": {"order": "o-1"}},
            "second": {"function": "ship", "args": {"order": "o-1", "amount": 5}},
        },
    }
    result = replay(w.two_steps, sim.history.events, execution_id="ex-1")
    assert result.outcome == sim.outcome
    assert result.ended_by == "ExecutionSucceeded"
    assert result.activations == 3
    assert len(result.commands) == 3


def test_gathered_steps_are_issued_together_in_code_order() -> None:
    assert first_activation(w.parallel) == [
        {"type": "step", "id": 1, "function": "check", "args": {"region": "eu"}},
        {"type": "step", "id": 2, "function": "check", "args": {"region": "us"}},
        {"type": "step", "id": 3, "function": "check", "args": {"region": "ap"}},
    ]
    sim = Simulation(w.parallel, one_at_a_time=True)
    sim.run()
    assert [r["args"]["region"] for r in sim.outcome["output"]] == ["eu", "us", "ap"]
    assert len(sim.issued) == 4  # one task to start, one per step resolved


def test_a_loop_with_sleeps_replays_to_the_same_commands() -> None:
    sim = Simulation(w.polling)
    sim.run()
    commands = sim.all_commands()
    assert [c["type"] for c in commands[:4]] == ["step", "sleep", "step", "sleep"]
    assert commands[1]["duration"] == "5s"
    assert [c["id"] for c in commands if "id" in c] == list(range(1, 61))
    assert sim.outcome == {"type": "complete", "output": 30}
    result = replay(w.polling, sim.history.events, execution_id="ex-1")
    assert len(result.commands) == 61
    assert result.activations == 61


def test_an_approval_returns_the_grant_with_the_request_data() -> None:
    sim = Simulation(w.approvals)
    sim.run()
    assert sim.issued[0] == [
        {
            "type": "approval",
            "id": 1,
            "name": "go_live",
            "timeout": "3600s",
            "data": {"cost": 3},
            "step": "approval.go_live#1",
        }
    ]
    assert sim.outcome["output"] == {"approved": True, "approver": "ann", "payload": {"ok": True}, "data": {"cost": 3}}


def test_a_rejected_approval_raises_what_the_code_can_catch() -> None:
    def reject(command: Command) -> tuple[str, dict[str, Any]]:
        return "StepFailed", {
            "error_type": "ApprovalRejected",
            "message": "rejected by bob: no",
            "retry_at_ms": None,
            "continued": False,
        }

    sim = Simulation(w.rejected, respond=reject)
    sim.run()
    assert sim.outcome == {"type": "complete", "output": "rejected: rejected by bob: no"}


def test_a_signal_arrives_as_a_signal_object() -> None:
    sim = Simulation(w.signals)
    sim.run()
    assert sim.issued[0][0] == {
        "type": "waitSignal",
        "id": 1,
        "name": "approve",
        "timeout": "60s",
        "step": "signal.approve#1",
    }
    assert sim.outcome["output"] == {
        "name": "approve",
        "data": {"n": 1},
        "sender": "cli",
        "at": "2026-03-01 12:30:00+00:00",
    }


def test_children_run_one_after_the_other_with_their_input() -> None:
    sim = Simulation(w.children, input=["a", "b"])
    sim.run()
    kids = [c for c in sim.all_commands() if c["type"] == "child"]
    assert [(c["id"], c["workflow"], c["input"], c["onParentCancel"]) for c in kids] == [
        (1, "provision", {"host": "a"}, "abandon"),
        (2, "provision", {"host": "b"}, "abandon"),
    ]
    assert sim.outcome["output"] == [{"child_of": {"host": "a"}}, {"child_of": {"host": "b"}}]


def test_a_final_step_failure_can_be_compensated() -> None:
    def fail_charge(command: Command) -> tuple[str, dict[str, Any]]:
        if command["function"] == "charge":
            return "StepFailed", {
                "error_type": "CardDeclined",
                "message": "no",
                "retry_at_ms": None,
                "continued": False,
            }
        return default_respond(command)

    sim = Simulation(w.compensating, respond=fail_charge)
    sim.run()
    assert [c.get("args") for c in sim.all_commands() if c["type"] == "step"] == [{}, {"reason": "CardDeclined"}]
    assert sim.outcome == {"type": "complete", "output": "refunded after charge#1"}


def test_a_failure_the_engine_retries_is_not_given_to_the_code() -> None:
    history = History()
    token, _ = history.task_started()
    history.task_completed(token, [{"type": "step", "id": 1, "function": "charge", "args": {}}])
    history.step_failed("charge#1", "Timeout", "slow", retry_at_ms=5000)  # retried by the engine
    history.step_completed("charge#1", "ok")
    _, started = history.task_started()
    replayer = Replayer(WorkflowDefinition("compensating", w.compensating), execution_id="ex-1", workflow="wf")
    replayer.feed(parse_events(history.events))
    assert replayer.run_live(started) == [{"type": "complete", "output": "charged"}]


def test_an_uncaught_exception_fails_the_workflow_with_its_type_and_stack() -> None:
    sim = Simulation(w.failing)
    sim.run()
    outcome = sim.outcome
    assert (outcome["type"], outcome["errorType"], outcome["message"]) == ("fail", "ValueError", "bad state")
    assert "raise ValueError" in outcome["stacktrace"]
    assert replay(w.failing, sim.history.events).ended_by == "ExecutionFailed"


def test_continue_as_new_ends_the_run_with_the_next_input() -> None:
    sim = Simulation(w.ending_by_continue_as_new, input=5)
    sim.run()
    assert sim.outcome == {"type": "continueAsNew", "input": 15}
    assert replay(w.ending_by_continue_as_new, sim.history.events).ended_by == "ExecutionContinuedAsNew"


def test_a_cancel_request_cancels_the_code_at_its_await() -> None:
    def cancel(command: Command) -> tuple[str, dict[str, Any]]:
        return "ExecutionCancelRequested", {"reason": "user asked"}

    sim = Simulation(w.cancellable, respond=cancel, one_at_a_time=True)
    sim.run()
    assert sim.outcome == {"type": "cancelled", "message": "user asked"}


def test_code_that_catches_the_cancellation_can_clean_up_and_complete() -> None:
    def cancel_long(command: Command) -> tuple[str, dict[str, Any]]:
        if command.get("function") == "long":
            return "ExecutionCancelRequested", {"reason": "stop"}
        return default_respond(command)

    sim = Simulation(w.catching_cancellation, respond=cancel_long)
    sim.run()
    assert [c["function"] for c in sim.all_commands() if c["type"] == "step"] == ["long", "cleanup"]
    assert sim.outcome == {"type": "complete", "output": "cleaned up"}


def test_a_failed_workflow_task_leaves_its_outcomes_for_the_next_activation() -> None:
    history = History({"id": "o-1", "amount": 1})
    token, _ = history.task_started()
    history.task_completed(token, [{"type": "step", "id": 1, "function": "charge", "args": {"order": "o-1"}}])
    history.step_completed("charge#1", "c")
    failed, _ = history.task_started()
    history.task_failed(failed)
    _, started = history.task_started()
    replayer = Replayer(WorkflowDefinition("two_steps", w.two_steps), execution_id="ex-1", workflow="wf")
    replayer.feed(parse_events(history.events))
    assert replayer.run_live(started) == [
        {"type": "step", "id": 2, "function": "ship", "args": {"order": "o-1", "amount": 1}}
    ]


def test_an_outcome_that_arrives_while_a_task_runs_goes_to_the_next_activation() -> None:
    history = History()
    token, _ = history.task_started()
    regions = ((1, "eu"), (2, "us"), (3, "ap"))
    history.task_completed(
        token, [{"type": "step", "id": i, "function": "check", "args": {"region": r}} for i, r in regions]
    )
    history.step_completed("check#1", 1)
    token2, _ = history.task_started()
    history.step_completed("check#2", 2)  # while the second task runs: for the third one
    history.task_completed(token2, [{"type": "step", "id": 4, "function": "after_1", "args": {}}])
    history.step_completed("check#3", 3)
    history.step_completed("after_1#4", None)
    _, started = history.task_started()
    replayer = Replayer(WorkflowDefinition("first_done", w.first_done), execution_id="ex-1", workflow="wf")
    replayer.feed(parse_events(history.events))  # would raise NonDeterminismError had check#2 been given early
    assert replayer.run_live(started) == [{"type": "complete", "output": 1}]


SCENARIOS: list[tuple[Callable[..., Any], Any, bool]] = [
    (w.two_steps, {"id": "o", "amount": 2}, False),
    (w.parallel, None, True),
    (w.polling, None, False),
    (w.approvals, None, False),
    (w.signals, None, False),
    (w.children, ["x", "y", "z"], True),
    (w.mixed, 4, True),
    (w.mixed, 3, False),
    (w.compensating, None, False),
    (w.first_done, None, True),
    (w.first_done, None, False),
    (w.ending_by_continue_as_new, 1, False),
]


@pytest.mark.parametrize(("fn", "input", "one_at_a_time"), SCENARIOS)
def test_a_cached_instance_issues_what_a_fresh_replay_of_the_same_history_issues(
    fn: Callable[..., Any], input: Any, one_at_a_time: bool
) -> None:
    sim = Simulation(fn, input=input, one_at_a_time=one_at_a_time)
    sim.run()  # asserts at every workflow task that the cached and the fresh replayer agree
    assert sim.outcome["type"] in ("complete", "continueAsNew")
    result = replay(fn, sim.history.events, execution_id="ex-1")
    assert result.outcome == sim.outcome
    assert list(result.commands) == sim.all_commands()


def test_a_history_cut_before_its_end_replays_without_an_outcome() -> None:
    sim = Simulation(w.polling)
    sim.run()
    cut = [e for e in sim.history.events if e["seq"] <= 20]
    result = replay(w.polling, cut, execution_id="ex-1")
    assert result.outcome is None
    assert result.ended_by is None


def test_a_history_whose_end_event_disagrees_with_the_code_is_non_deterministic() -> None:
    sim = Simulation(w.failing)
    sim.run()
    events = [dict(e) for e in sim.history.events]
    events[-1] = {**events[-1], "type": "ExecutionSucceeded"}
    with pytest.raises(NonDeterminismError, match="ExecutionSucceeded"):
        replay(w.failing, events)


async def waits_and_reports(wf: WorkflowContext, input: str) -> str:
    try:
        if input == "approval":
            await wf.wait_for_approval("ok", timeout="1m")
        elif input == "signal":
            await wf.wait_for_signal("go", timeout="1m")
        elif input == "child":
            await wf.child(waits_and_reports, "x")
        else:
            await wf.step("s")
    except WorkflowStepError as exc:
        return f"{type(exc).__name__} {exc.error_type} {exc.step}"
    return "no error"


@pytest.mark.parametrize(
    ("kind", "error_type", "raised"),
    [
        ("approval", "ApprovalTimedOut", "ApprovalTimedOutError"),
        ("approval", "ApprovalRejected", "ApprovalRejectedError"),
        ("signal", "SignalTimedOut", "SignalTimedOutError"),
        ("child", "ChildFailed", "ChildFailedError"),
        ("child", "ChildCancelled", "ChildFailedError"),
        ("step", "Boom", "StepFailedError"),
    ],
)
def test_each_final_failure_raises_its_own_error_class(kind: str, error_type: str, raised: str) -> None:
    def fail(command: Command) -> tuple[str, dict[str, Any]]:
        return "StepFailed", {"error_type": error_type, "message": "m", "retry_at_ms": None, "continued": False}

    sim = Simulation(waits_and_reports, input=kind, respond=fail)
    sim.run()
    step = sim.issued[0][0]["step"]
    assert sim.outcome == {"type": "complete", "output": f"{raised} {error_type} {step}"}


def test_a_cancel_requested_before_the_code_ever_ran_cancels_it() -> None:
    history = History()
    history.cancel_requested("too late")
    _, started = history.task_started()
    assert first_run(w.polling, history, started) == [{"type": "cancelled", "message": "too late"}]


def test_replay_reads_the_clients_history_events() -> None:
    sim = Simulation(w.two_steps, input={"id": "o", "amount": 1})
    sim.run()
    events = [
        HistoryEvent(seq=e["seq"], type=e["type"], at=parse_time(e["at"]), data=e["data"]) for e in sim.history.events
    ]
    assert replay(w.two_steps, events).outcome == sim.outcome


def first_run(fn: Callable[..., Any], history: History, started: int) -> list[Command]:
    replayer = Replayer(WorkflowDefinition(fn.__name__, fn), execution_id="ex-1", workflow="wf")
    try:
        replayer.feed(parse_events(history.events))
        return replayer.run_live(started)
    finally:
        replayer.close()
