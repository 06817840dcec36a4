"""Behaviour of the pure engine core, driven through `decide` with a fake clock."""

from __future__ import annotations

import pytest

from cerebelum_operator.engine import CommandRejected, ExecutionPhase, Reply, StepPhase, decide
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model import InputInvalid

from .simulator import Simulator

FAIL = cmd.OutcomeFailure("Boom", "it broke")


def test_sequential_steps_run_in_order_and_the_last_output_is_the_result() -> None:
    sim = Simulator.start({"timeline": ["a", "b"]}, {"n": 1})
    assert list(sim.tasks) and sim.task("a").arguments == {"input": {"n": 1}, "results": {}}
    sim.run("a")
    assert sim.task("b").arguments["results"] == {"a": {"a": True}}
    sim.run("b")
    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert sim.state.output == {"b": True}
    assert sim.kinds()[-1] == "ExecutionSucceeded"


def test_a_parallel_group_joins_before_the_next_step() -> None:
    sim = Simulator.start({"timeline": [["a", "b"], "c"]})
    assert {t.step for t in sim.tasks.values()} == {"a", "b"}
    sim.run("b")
    assert not [t for t in sim.tasks.values() if t.step == "c"]
    sim.run("a")
    sim.run("c")
    assert sim.state.phase == ExecutionPhase.SUCCEEDED


def test_a_failed_step_is_retried_with_exponential_backoff_then_succeeds() -> None:
    spec = {"timeline": ["a"], "defaults": {"retry": {"maxAttempts": 4, "initialInterval": "1s", "jitter": 0}}}
    sim = Simulator.start(spec)
    start = sim.now_ms
    sim.run("a", FAIL)
    assert sim.task("a").attempt == 2 and sim.task("a").visible_at_ms == start + 1000
    sim.run("a", FAIL)
    assert sim.task("a").visible_at_ms == start + 1000 + 2000
    sim.run("a")
    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert sim.state.steps["a"].attempt == 3


def test_exhausted_retries_dead_letter_the_step_and_fail_the_execution() -> None:
    sim = Simulator.start({"timeline": ["a", "b"], "defaults": {"retry": {"maxAttempts": 2}}})
    sim.run("a", FAIL)
    sim.run("a", FAIL)
    assert sim.state.phase == ExecutionPhase.FAILED
    assert "after 2 attempts" in (sim.state.error or "")
    assert len(sim.dead_letters) == 1 and not sim.tasks


def test_redriving_a_dead_letter_revives_the_execution_from_that_step() -> None:
    sim = Simulator.start({"timeline": ["a", "b"], "defaults": {"retry": {"maxAttempts": 1}}})
    sim.run("a", FAIL)
    (dead_letter,) = sim.dead_letters
    sim.send(cmd.Redrive(dead_letter))
    assert (sim.state.phase, sim.task("a").attempt) == (ExecutionPhase.RUNNING, 1)
    sim.run("a")
    sim.run("b")
    assert sim.state.phase == ExecutionPhase.SUCCEEDED and not sim.dead_letters


def test_a_non_retryable_error_type_fails_at_once() -> None:
    spec = {"timeline": ["a"], "defaults": {"retry": {"maxAttempts": 5, "nonRetryableErrors": ["Boom"]}}}
    sim = Simulator.start(spec)
    sim.run("a", FAIL)
    assert sim.state.phase == ExecutionPhase.FAILED and "not retryable" in (sim.state.error or "")


def test_retry_after_reruns_the_same_attempt_later_without_counting_a_failure() -> None:
    spec = {"timeline": ["a"], "defaults": {"retry": {"maxAttempts": 1}}}
    sim = Simulator.start(spec)
    for _ in range(3):
        sim.run("a", cmd.OutcomeRetryAfter(5000))
    task = sim.task("a")
    assert (task.attempt, task.poll) == (1, 3)
    sim.run("a")
    assert sim.state.phase == ExecutionPhase.SUCCEEDED


def test_a_sleep_after_a_step_waits_for_its_timer() -> None:
    sim = Simulator.start({"timeline": ["a", "b"]})
    sim.run("a", cmd.OutcomeSleep(86_400_000, {"slept": True}))
    assert sim.state.display_phase() == ExecutionPhase.SLEEPING
    assert not sim.tasks and len(sim.timers) == 1
    assert sim.state.wake_at_ms() == sim.now_ms + 86_400_000
    sim.fire_timers()
    assert sim.task("b").arguments["results"]["a"] == {"slept": True}


def test_a_built_in_approval_step_waits_and_approval_payload_reaches_later_steps() -> None:
    sim = Simulator.start({"timeline": ["go", "after"], "steps": {"go": {"approval": {"timeout": "1h"}}}})
    assert sim.state.display_phase() == ExecutionPhase.WAITING_FOR_APPROVAL and not sim.tasks
    sim.send(cmd.Approve("go", "alice", {"note": "ship it"}))
    result = sim.task("after").arguments["results"]["go"]
    assert result["approved"] is True and result["approver"] == "alice" and result["payload"] == {"note": "ship it"}
    assert not sim.timers


def test_a_rejected_approval_fails_the_execution_without_a_dead_letter() -> None:
    sim = Simulator.start({"timeline": ["go"], "steps": {"go": {"approval": {}}}})
    sim.send(cmd.Reject("go", "bob", "not today"))
    assert sim.state.phase == ExecutionPhase.FAILED
    assert "rejected by bob: not today" in (sim.state.error or "")
    assert not sim.dead_letters


def test_an_approval_that_times_out_follows_its_diverge_rule() -> None:
    spec = {
        "timeline": ["go", "fallback"],
        "steps": {"go": {"approval": {"timeout": "10m"}}},
        "diverge": {"go": [{"match": {"error": {"type": "ApprovalTimedOut"}}, "then": "continue"}]},
    }
    sim = Simulator.start(spec)
    sim.fire_timers()
    assert sim.task("fallback").arguments["results"]["go"]["error"]["type"] == "ApprovalTimedOut"


def test_a_worker_requested_approval_completes_the_step_with_the_approval() -> None:
    sim = Simulator.start({"timeline": ["a", "b"]})
    sim.run("a", cmd.OutcomeApproval("deploy", None, {"diff": "+1"}))
    assert sim.state.steps["a"].phase == StepPhase.WAITING_FOR_APPROVAL
    with pytest.raises(CommandRejected, match="no approval is pending for step 'b'"):
        sim.send(cmd.Approve("b", "alice"))
    sim.send(cmd.Approve("a", "alice"))
    assert sim.task("b").arguments["results"]["a"]["data"] == {"diff": "+1"}


def test_a_branch_jumps_forward_and_skips_the_steps_between() -> None:
    spec = {
        "timeline": ["a", "b", "c"],
        "branch": {"a": [{"when": "result.skip == true", "goto": "c"}]},
    }
    sim = Simulator.start(spec)
    sim.run("a", cmd.OutcomeSuccess({"skip": True}))
    assert sim.state.steps["b"].phase == StepPhase.SKIPPED
    sim.run("c")
    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert "JumpTaken" in sim.kinds()


def test_a_branch_after_a_parallel_group_is_evaluated_when_the_group_joins() -> None:
    spec = {
        "timeline": ["create", ["ip", "dns"], "approve", "configure"],
        "steps": {"approve": {"approval": {}}},
        "branch": {"dns": [{"when": "result.existing == true", "goto": "configure"}]},
    }
    sim = Simulator.start(spec)
    sim.run("create")
    sim.run("dns", cmd.OutcomeSuccess({"existing": True}))
    sim.run("ip")
    assert sim.task("configure") and sim.state.steps["approve"].phase == StepPhase.SKIPPED


def test_a_bounded_loop_stops_after_max_iterations() -> None:
    spec = {
        "timeline": ["a", "b"],
        "branch": {"b": [{"when": "true", "goto": "a", "maxIterations": 2}]},
    }
    sim = Simulator.start(spec)
    runs = 0
    while sim.state.phase == ExecutionPhase.RUNNING:
        sim.run("a")
        sim.run("b")
        runs += 1
    assert runs == 3 and sim.state.phase == ExecutionPhase.SUCCEEDED


def test_diverge_fail_on_a_matching_error_fails_without_retrying() -> None:
    spec = {
        "timeline": ["a"],
        "diverge": {"a": [{"match": {"error": {"type": "QuotaExceeded"}}, "then": "fail"}]},
    }
    sim = Simulator.start(spec)
    sim.run("a", cmd.OutcomeFailure("QuotaExceeded", "no quota"))
    assert sim.state.phase == ExecutionPhase.FAILED and "sends it to fail" in (sim.state.error or "")


def test_diverge_retry_on_a_matching_result_reruns_the_step() -> None:
    spec = {"timeline": ["a"], "diverge": {"a": [{"match": {"result": {"status": "pending"}}, "then": "retry"}]}}
    sim = Simulator.start(spec)
    sim.run("a", cmd.OutcomeSuccess({"status": "pending"}))
    assert sim.task("a").attempt == 2
    sim.run("a", cmd.OutcomeSuccess({"status": "done"}))
    assert sim.state.phase == ExecutionPhase.SUCCEEDED


def test_diverge_goto_on_failure_jumps_to_a_recovery_step() -> None:
    spec = {
        "timeline": ["a", "b", "recover"],
        "diverge": {"a": [{"match": {"error": {"type": "Boom"}}, "goto": "recover"}]},
    }
    sim = Simulator.start(spec)
    sim.run("a", FAIL)
    assert sim.task("recover")
    assert sim.state.steps["b"].phase == StepPhase.SKIPPED


def test_a_timed_out_attempt_is_retried_and_its_late_completion_is_stale() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    first = sim.task("a")
    sim.send(cmd.TaskStarted(first.token, "w1"))
    sim.send(cmd.TaskTimedOut(first.token, "lease"))
    assert sim.task("a").attempt == 2
    assert sim.send(cmd.TaskCompleted(first.token, cmd.OutcomeSuccess(1))) == Reply.DUPLICATE
    assert sim.send(cmd.TaskCompleted("ex1/a/9/0/99", cmd.OutcomeSuccess(1))) == Reply.STALE
    assert sim.state.steps["a"].last_error is not None and "LeaseExpired" in sim.state.steps["a"].last_error


def test_a_completion_delivered_twice_is_recorded_once() -> None:
    sim = Simulator.start({"timeline": ["a", "b"]})
    task = sim.task("a")
    sim.send(cmd.TaskStarted(task.token, "w1"))
    assert sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess(1))) == Reply.ACCEPTED
    assert sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess(1))) == Reply.DUPLICATE
    assert sim.kinds().count("StepCompleted") == 1


def test_cancelling_stops_running_tasks_and_timers() -> None:
    sim = Simulator.start({"timeline": [["a", "b"]]})
    sim.run("a", cmd.OutcomeSleep(60_000, None))
    task_b = sim.task("b")
    sim.send(cmd.Cancel("user asked"))
    assert sim.state.phase == ExecutionPhase.CANCELLED
    assert task_b.token in sim.cancelled and not sim.timers
    assert sim.send(cmd.Cancel("again")) == Reply.DUPLICATE


def test_the_output_expression_shapes_the_result() -> None:
    sim = Simulator.start({"timeline": ["a"], "output": "{'total': steps.a.n + input.k}"}, {"k": 2})
    sim.run("a", cmd.OutcomeSuccess({"n": 40}))
    assert sim.state.output == {"total": 42}


def test_a_branch_condition_that_fails_at_run_time_fails_the_execution_clearly() -> None:
    sim = Simulator.start({"timeline": ["a", "b"], "branch": {"a": [{"when": "result.missing", "goto": "b"}]}})
    sim.run("a", cmd.OutcomeSuccess({}))
    assert sim.state.phase == ExecutionPhase.FAILED
    assert "branch.a[0]" in (sim.state.error or "")


def test_input_that_breaks_the_schema_is_refused_before_anything_is_recorded() -> None:
    spec = {"timeline": ["a"], "input": {"type": "object", "required": ["region"]}}
    with pytest.raises(InputInvalid, match="'region' is a required property"):
        Simulator.start(spec, {})


def test_replaying_the_history_rebuilds_the_same_state() -> None:
    spec = {
        "timeline": ["a", ["b", "c"], "d"],
        "steps": {"d": {"approval": {}}},
        "defaults": {"retry": {"maxAttempts": 3}},
    }
    sim = Simulator.start(spec, {"x": 1})
    sim.run("a", FAIL)
    sim.run("a", cmd.OutcomeSleep(1000, {"a": 1}))
    sim.fire_timers()
    sim.run("b")
    sim.run("c", cmd.OutcomeRetryAfter(10))
    sim.run("c")
    sim.send(cmd.Approve("d", "carol"))
    replayed = sim.replayed()
    assert replayed == sim.state
    assert [r.seq for r in sim.history] == list(range(1, len(sim.history) + 1))


def test_a_sleep_that_comes_with_a_result_the_rules_retry_is_not_taken() -> None:
    # Found by tests/property: the retry ran beside the sleep, and the sleep's timer outlived the execution.
    sim = Simulator.start(
        {
            "taskQueue": "q",
            "timeline": ["g"],
            "defaults": {"retry": {"maxAttempts": 2, "initialInterval": "1s"}},
            "diverge": {"g": [{"when": "true", "then": "retry"}]},
        }
    )
    sim.run("g", cmd.OutcomeSleep(60_000, {"x": 1}))
    assert "SleepStarted" not in sim.kinds()
    assert sim.timers == {}
    sim.run("g", cmd.OutcomeSleep(60_000, {}))
    assert sim.state.phase.value == "Failed"
    assert sim.timers == {}


def test_an_owned_state_takes_its_lease_in_place_and_the_result_equals_a_copied_decision() -> None:
    sim = Simulator.start({"timeline": ["a", "b"]})
    task = sim.task("a")
    started = cmd.TaskStarted(task.token, "w1")
    copied = decide(sim.definition, sim.state, started, now_ms=sim.now_ms)
    given = sim.state.clone()  # a decision's own copy, as the engine's eager lease gets it
    in_place = decide(sim.definition, given, started, now_ms=sim.now_ms, owned=True)
    assert in_place.state is given and copied.state is not sim.state
    assert given.steps["a"].phase == StepPhase.RUNNING and sim.state.steps["a"].phase != StepPhase.RUNNING
    assert [e.event for e in in_place.events] == [e.event for e in copied.events]
    assert in_place.actions == copied.actions


def test_an_owned_state_a_command_is_refused_on_is_left_as_it_was() -> None:
    sim = Simulator.start({"timeline": ["a", "b"]})
    task = sim.task("a")
    sim.send(cmd.TaskStarted(task.token, "w1"))
    given = sim.state.clone()
    before = (given.last_seq, dict(given.steps), given.steps["a"].phase, given.steps["a"].worker_id)
    again = decide(sim.definition, given, cmd.TaskStarted(task.token, "w2"), now_ms=sim.now_ms, owned=True)
    assert again.reply == Reply.STALE and not again.events and not again.actions
    assert (given.last_seq, dict(given.steps), given.steps["a"].phase, given.steps["a"].worker_id) == before
