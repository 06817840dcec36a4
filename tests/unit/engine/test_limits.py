"""Limits the engine core enforces itself, each refused with a message that names the limit."""

from __future__ import annotations

import json

import pytest

from cerebelum_operator.engine import CommandRejected, ExecutionPhase, ExecutionState, Reply, decide
from cerebelum_operator.engine import actions as act
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine import events as ev
from cerebelum_operator.engine.decide import CommandTooLarge
from cerebelum_operator.model import InputInvalid, WorkflowInvalid, compile_workflow

from .simulator import Simulator

LOOP = {
    "taskQueue": "q",
    "timeline": ["poll_status"],
    "branch": {"poll_status": [{"when": "true", "goto": "poll_status", "maxIterations": 10_000}]},
}


def test_an_execution_whose_history_reaches_the_limit_fails_naming_it_and_suggesting_continue_as_new() -> None:
    definition = compile_workflow(LOOP)
    decision = decide(
        definition, ExecutionState(execution_id="ex"), cmd.Start("loop", {}), now_ms=1, max_history_events=100
    )
    state = decision.state
    assert state is not None
    for _ in range(200):
        if state.phase.terminal:
            break
        task = next(a for a in decision.actions if isinstance(a, act.ScheduleTask))
        started = decide(definition, state, cmd.TaskStarted(task.token, "w"), now_ms=2, max_history_events=100)
        assert started.state is not None
        decision = decide(
            definition,
            started.state,
            cmd.TaskCompleted(task.token, cmd.OutcomeSuccess({})),
            now_ms=3,
            max_history_events=100,
        )
        assert decision.state is not None
        state = decision.state

    assert state.phase.value == "Failed"
    assert state.error is not None
    assert "limit of 100" in state.error and "--max-history-events" in state.error
    assert "continueAsNew step" in state.error
    assert 100 <= state.last_seq <= 104  # one decision may pass the limit by the events it made
    cancelled = [a for a in decision.actions if isinstance(a, act.CancelTask)]
    scheduled = [a for a in decision.actions if isinstance(a, act.ScheduleTask)]
    assert len(cancelled) == len(scheduled)  # what the last decision scheduled is withdrawn


def test_a_terminal_execution_past_the_limit_stays_as_it_ended() -> None:
    definition = compile_workflow({"taskQueue": "q", "timeline": ["a"]})
    started = decide(definition, ExecutionState(execution_id="ex"), cmd.Start("wf", {}), now_ms=1)
    assert started.state is not None
    cancelled = decide(definition, started.state, cmd.Cancel("enough"), now_ms=2)
    assert cancelled.state is not None
    again = decide(definition, cancelled.state, cmd.Cancel("again"), now_ms=3, max_history_events=1)
    assert again.events == []


# -- what a task carries ---------------------------------------------------------------------

BUDGET = 10_000


def carried(sim: Simulator) -> list[int]:
    return [len(json.dumps(task.arguments, separators=(",", ":"))) for task in sim.tasks.values()]


def test_the_step_whose_output_would_make_a_task_carry_too_much_fails_for_good_naming_step_size_and_limit() -> None:
    spec = {"timeline": ["a", "b", "c", "d"], "defaults": {"retry": {"maxAttempts": 5}}}
    sim = Simulator.start(spec, {"n": 1}, max_task_bytes=BUDGET)
    sim.run("a", cmd.OutcomeSuccess("x" * 4_000))
    sim.run("b", cmd.OutcomeSuccess("x" * 4_000))
    assert max(carried(sim)) <= BUDGET

    sim.run("c", cmd.OutcomeSuccess("x" * 4_000))

    assert sim.state.phase == ExecutionPhase.FAILED
    failed = [r.event for r in sim.history if isinstance(r.event, ev.StepFailed)]
    assert [(f.step, f.error_type, f.retryable) for f in failed] == [("c", "ArgumentsTooLarge", False)]
    error = sim.state.error or ""
    assert "step 'c'" in error and "3.9 KiB" in error and "over the 9.8 KiB limit" in error
    assert "c" not in sim.state.results and not sim.tasks  # d never got arguments over the limit
    assert sim.replayed() == sim.state


def test_a_loop_replaces_its_earlier_result_so_reruns_do_not_add_up() -> None:
    loop = {
        "timeline": ["poll_status"],
        "branch": {"poll_status": [{"when": "result != 'done'", "goto": "poll_status", "maxIterations": 50}]},
    }
    sim = Simulator.start(loop, max_task_bytes=BUDGET)
    for _ in range(20):
        sim.run("poll_status", cmd.OutcomeSuccess("p" * 3_000))
    sim.run("poll_status", cmd.OutcomeSuccess("done"))

    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert sim.replayed() == sim.state
    assert sim.state.carried_bytes < 100


def test_approval_data_from_a_worker_that_would_overflow_fails_the_step_like_an_output() -> None:
    sim = Simulator.start({"timeline": ["a", "b"]}, max_task_bytes=BUDGET)
    sim.run("a", cmd.OutcomeSuccess("x" * 6_000))
    sim.run("b", cmd.OutcomeApproval("deploy", None, "y" * 5_000))
    assert sim.state.phase == ExecutionPhase.FAILED and "step 'b'" in (sim.state.error or "")
    assert not sim.state.approvals


def test_an_approval_payload_that_would_overflow_is_refused_and_a_smaller_one_is_taken() -> None:
    sim = Simulator.start({"timeline": ["a", "go", "b"], "steps": {"go": {"approval": {}}}}, max_task_bytes=BUDGET)
    sim.run("a", cmd.OutcomeSuccess("x" * 6_000))
    before = len(sim.history)

    with pytest.raises(CommandTooLarge, match=r"step 'go'.*over the 9.8 KiB limit of what a task carries"):
        sim.send(cmd.Approve("go", "alice", "z" * 5_000))
    assert len(sim.history) == before and "go" in sim.state.approvals

    sim.send(cmd.Approve("go", "alice", "ok"))
    assert sim.task("b")


def test_an_input_over_what_a_task_may_carry_is_refused() -> None:
    definition = compile_workflow({"taskQueue": "q", "timeline": ["a"]})
    with pytest.raises(InputInvalid, match=r"the input is 9\.8 KiB, over the 9\.8 KiB limit of what a task carries"):
        decide(
            definition,
            ExecutionState(execution_id="ex"),
            cmd.Start("wf", "i" * BUDGET),
            now_ms=1,
            max_task_bytes=BUDGET,
        )


def test_an_output_expression_giving_more_than_the_limit_fails_the_execution_naming_the_output() -> None:
    spec = {"timeline": ["a"], "output": "{'x': steps.a, 'y': steps.a, 'z': steps.a}"}
    sim = Simulator.start(spec, max_task_bytes=BUDGET)
    sim.run("a", cmd.OutcomeSuccess("x" * 4_000))
    assert sim.state.phase == ExecutionPhase.FAILED
    assert "output: the expression gave 11.7 KiB, over the 9.8 KiB limit" in (sim.state.error or "")


# -- strings the engine stores ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (cmd.Approve("go", "a" * 600), "approver is 600 characters long, over the limit of 512"),
        (cmd.Reject("go", "alice", request_id="r" * 300), "request id is 300 characters long, over the limit of 256"),
        (cmd.Approve("s" * 300, "alice"), "step is 300 characters long, over the limit of 253"),
    ],
    ids=["approver", "request-id", "step"],
)
def test_an_approval_with_a_string_over_its_limit_is_refused_naming_the_field_and_the_limit(
    command: cmd.Command, message: str
) -> None:
    sim = Simulator.start({"timeline": ["go"], "steps": {"go": {"approval": {}}}})
    with pytest.raises(CommandRejected, match=message):
        sim.send(command)
    assert "go" in sim.state.approvals


def test_worker_ids_error_types_and_approval_kinds_over_their_limits_are_refused() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    task = sim.task("a")
    with pytest.raises(CommandRejected, match="worker_id is 257 characters long, over the limit of 256"):
        sim.send(cmd.TaskStarted(task.token, "w" * 257))
    sim.send(cmd.TaskStarted(task.token, "w1"))
    with pytest.raises(CommandRejected, match="error type is 300 characters long"):
        sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeFailure("E" * 300, "m"), worker_id="w1"))
    with pytest.raises(CommandRejected, match="approval kind is 300 characters long"):
        sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeApproval("k" * 300, None, None), worker_id="w1"))
    assert sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess(1), worker_id="w1")) == Reply.ACCEPTED


def test_free_text_reasons_are_cut_to_their_limit_not_refused() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    sim.send(cmd.Cancel("r" * 50_000))
    (cancelled,) = [r.event for r in sim.history if isinstance(r.event, ev.ExecutionCancelled)]
    assert cancelled.reason == "r" * 8 * 1024


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"taskQueue": "q" * 254, "timeline": ["a"]}, "taskQueue: String should have at most 253 characters"),
        (
            {"timeline": ["a"], "steps": {"a": {"approval": {"kind": "k" * 257}}}},
            "steps.a.approval.kind: String should have at most 256 characters",
        ),
        (
            {"timeline": ["a"], "defaults": {"retry": {"nonRetryableErrors": ["E" * 257]}}},
            "defaults.retry.nonRetryableErrors[0]: String should have at most 256 characters",
        ),
        (
            {"timeline": ["a"], "diverge": {"a": [{"match": {"error": {"type": "E" * 257}}, "then": "fail"}]}},
            "diverge.a[0].match.error.type: String should have at most 256 characters",
        ),
        ({"timeline": ["a"], "output": "1" * 4097}, "output: String should have at most 4096 characters"),
    ],
)
def test_a_workflow_string_over_its_limit_is_refused_at_apply_naming_its_place(
    spec: dict[str, object], named: str
) -> None:
    """Spec strings reach events and task rows (an approval kind, a queue): each has a limit."""
    with pytest.raises(WorkflowInvalid) as refused:
        compile_workflow(spec)
    assert named in str(refused.value)
