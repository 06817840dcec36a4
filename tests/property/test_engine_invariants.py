"""The engine core keeps its invariants whatever workers, timers and people do, in any order.

Generated workflows are driven through `decide` with generated outcomes (successes, failures
retryable or not, retry_after, sleeps, approval requests), approvals and rejections, timer
firings, timeouts, cancellations, redrives, and duplicate, stale and garbage deliveries, on a
fake clock. After every decision `Harness` checks: no step runs before the steps it depends on
completed in that run; a finished execution records nothing more; no step exceeds
retry.maxAttempts in one round (a goto back over it or a redrive starts a new round); event
sequence numbers are contiguous; every event survives the store's JSON; replaying the history
rebuilds the state; a running execution always waits on something; and `decide` raises nothing
but CommandRejected (and InputInvalid for a start).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from cerebelum_operator.engine import ExecutionPhase, ExecutionState, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.retry import backoff_ms
from cerebelum_operator.model import Retry, compile_workflow
from cerebelum_operator.model.durations import MAX_DURATION_MS

from .engine_model import Harness
from .strategies import ERROR_TYPES, inputs_for, valid_specs

RESULTS = st.fixed_dictionaries(
    {},
    optional={
        "flag": st.booleans(),
        "n": st.integers(0, 5),
        "status": st.sampled_from(["pending", "done"]),
        "again": st.booleans(),
    },
)
OUTPUTS = st.one_of(
    RESULTS,
    RESULTS,
    RESULTS,
    st.fixed_dictionaries(
        {},
        optional={
            "flag": st.booleans(),
            "n": st.integers(0, 5),
            "status": st.sampled_from(["pending", "done"]),
            "again": st.booleans(),
        },
    ),
    st.none(),
    st.integers(-3, 3),
    st.text(max_size=4),
    st.lists(st.integers(0, 3), max_size=2),
)
DELAYS = st.one_of(st.integers(-1_000, 3_600_000), st.sampled_from([0, 2**64 - 1, 2**63]))
SUCCESS = st.builds(cmd.OutcomeSuccess, OUTPUTS)
OUTCOMES = st.one_of(
    SUCCESS,
    st.builds(
        cmd.OutcomeFailure,
        st.sampled_from([*ERROR_TYPES, "Other"]),
        st.sampled_from(["it broke", "try again"]),
        st.booleans(),
    ),
    st.builds(cmd.OutcomeRetryAfter, DELAYS),
    st.builds(cmd.OutcomeSleep, DELAYS, OUTPUTS),
    st.builds(cmd.OutcomeApproval, st.sampled_from(["deploy", "ok"]), st.one_of(st.none(), DELAYS), OUTPUTS),
    st.builds(cmd.OutcomeCancelled, st.sampled_from(["stopped", ""])),
)
GARBAGE_TOKENS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "/", "ex1/a/1/0/1", "ex1/a/x/0/1", "ex1//1/0/1", "other/a/1/0/1", "ex1/a/99/0/99"]),
)


def pick(items: list[Any], index: int) -> Any:
    return items[index % len(items)] if items else None


class EngineMachine(RuleBasedStateMachine):
    """One execution of a generated workflow, driven by arbitrary commands."""

    harness: Harness

    @initialize(spec=valid_specs(), data=st.data())
    def start(self, spec: dict[str, Any], data: st.DataObject) -> None:
        self.harness = Harness(compile_workflow(spec), ExecutionState(execution_id="ex1"))
        if data.draw(st.booleans(), label="refuse a bad input first"):
            self.harness.send(cmd.Start("wf", {"region": ["not", "a", "string"], "count": "x"}))
        self.harness.send(cmd.Start("wf", data.draw(inputs_for(spec.get("input")), label="input")))

    # -- workers -------------------------------------------------------------------------

    @rule(index=st.integers(0, 20), worker=st.sampled_from(["w1", "w2"]))
    def a_worker_takes_a_task(self, index: int, worker: str) -> None:
        token = pick(sorted(self.harness.tasks), index)
        if token is not None:
            self.harness.start_task(token, worker)

    @rule(index=st.integers(0, 20), outcome=OUTCOMES, started=st.booleans())
    def a_worker_reports_an_outcome(self, index: int, outcome: cmd.Outcome, started: bool) -> None:
        token = pick(sorted(self.harness.tasks), index)
        if token is None:
            return
        if started and token not in self.harness.leased:
            self.harness.start_task(token, "w1")
        self.harness.send(cmd.TaskCompleted(token, outcome))

    @rule(index=st.integers(0, 20), outcomes=st.lists(SUCCESS, min_size=1, max_size=4))
    def workers_run_tasks_to_success(self, index: int, outcomes: list[cmd.Outcome]) -> None:
        """The common case, so that runs get far: branches, loops, sleeps and the end."""
        for outcome in outcomes:
            token = pick(sorted(self.harness.tasks), index)
            if token is None:
                return
            self.harness.start_task(token, "w1")
            self.harness.send(cmd.TaskCompleted(token, outcome))

    @rule(
        index=st.integers(0, 20),
        kind=st.sampled_from(["start_to_close", "heartbeat", "lease"]),
        rare=st.integers(0, 2),
    )
    def a_task_times_out(self, index: int, kind: Any, rare: int) -> None:
        if rare:
            return
        token = pick(sorted(self.harness.leased) or sorted(self.harness.tasks), index)
        if token is not None:
            task = self.harness.tasks.get(token)
            if task is not None:
                self.harness.now_ms = max(self.harness.now_ms, task.visible_at_ms) + task.timeout_ms
            self.harness.send(cmd.TaskTimedOut(token, kind))

    @rule(index=st.integers(0, 50), outcome=OUTCOMES)
    def an_old_token_is_delivered_again(self, index: int, outcome: cmd.Outcome) -> None:
        """A duplicate or stale completion, start or timeout: it must change nothing."""
        token = pick(sorted(self.harness.tokens - set(self.harness.tasks)), index)
        if token is None:
            return
        for command in (
            cmd.TaskCompleted(token, outcome),
            cmd.TaskStarted(token, "w9"),
            cmd.TaskTimedOut(token, "lease"),
        ):
            decision = self.harness.send(command)
            assert decision is not None and not decision.events, f"{command} recorded {decision}"

    @rule(token=GARBAGE_TOKENS, outcome=OUTCOMES)
    def garbage_arrives_as_a_task_token(self, token: str, outcome: cmd.Outcome) -> None:
        if token in self.harness.tasks:
            return
        decision = self.harness.send(cmd.TaskCompleted(token, outcome))
        assert decision is not None and not decision.events

    @rule(index=st.integers(0, 100))
    def an_earlier_command_is_delivered_again(self, index: int) -> None:
        command = pick(self.harness.sent, index)
        if command is not None:
            self.harness.send(command)

    # -- time, people, operators ---------------------------------------------------------

    @rule(ms=st.integers(0, 2 * 3_600_000))
    def time_passes(self, ms: int) -> None:
        self.harness.now_ms += ms

    @rule(index=st.integers(0, 20), wait=st.booleans())
    def a_timer_fires(self, index: int, wait: bool) -> None:
        if wait:
            return  # half the time: timers fire late; people approve first
        timer_id = pick(sorted(self.harness.timers), index)
        if timer_id is not None:
            self.harness.fire(timer_id)

    @rule(timer_id=st.sampled_from(["ex1/sleep/a/3", "nope", ""]))
    def an_unknown_timer_fires(self, timer_id: str) -> None:
        if timer_id not in self.harness.timers:
            decision = self.harness.send(cmd.TimerFired(timer_id))
            assert decision is None or not decision.events

    @rule(index=st.integers(0, 20), answer=st.integers(0, 3), payload=OUTPUTS, anywhere=st.booleans())
    def someone_answers_an_approval(self, index: int, answer: int, payload: Any, anywhere: bool) -> None:
        names = sorted(self.harness.definition.steps) if anywhere else sorted(self.harness.state.approvals)
        step = pick(names, index)
        if step is None:
            return
        if answer:
            self.harness.send(cmd.Approve(step, "alice", payload))
        else:
            self.harness.send(cmd.Reject(step, "bob", "no"))

    @rule(rare=st.integers(0, 19), reason=st.sampled_from(["", "user asked"]))
    def someone_cancels(self, rare: int, reason: str) -> None:
        if rare == 0:
            self.harness.send(cmd.Cancel(reason))

    @rule(index=st.integers(0, 20), garbage=st.booleans())
    def someone_redrives_a_dead_letter(self, index: int, garbage: bool) -> None:
        dead_letter = "ex1/nope" if garbage else pick(sorted(self.harness.dead_letters), index)
        if dead_letter is not None:
            self.harness.send(cmd.Redrive(dead_letter))

    @precondition(lambda self: hasattr(self, "harness"))
    @invariant()
    def replay_rebuilds_the_state_and_nothing_is_stuck(self) -> None:
        self.harness.check_state()


def test_the_engine_keeps_its_invariants_under_any_sequence_of_commands() -> None:
    run_state_machine_as_test(
        EngineMachine,
        settings=settings(max_examples=min(2 * settings().max_examples, 1_000), stateful_step_count=80),
    )


def drive_to_the_end(harness: Harness, outputs: st.DataObject, *, budget: int = 3_000) -> None:
    """Complete every task with a success, approve every approval, fire every timer."""
    for _ in range(budget):
        harness.check_state()
        if harness.state.phase.terminal:
            return
        if harness.tasks:
            token = sorted(harness.tasks, key=lambda t: harness.tasks[t].visible_at_ms)[0]
            harness.start_task(token, "w1")
            harness.send(cmd.TaskCompleted(token, cmd.OutcomeSuccess(outputs.draw(OUTPUTS, label="output"))))
        elif harness.state.approvals:
            harness.send(cmd.Approve(sorted(harness.state.approvals)[0], "alice"))
        elif harness.timers:
            harness.fire(min(harness.timers, key=harness.timers.__getitem__))
    raise AssertionError(f"not finished after {budget} commands: {harness.state.phase}")


@given(spec=valid_specs(), data=st.data())
def test_a_workflow_whose_steps_all_succeed_always_finishes(spec: dict[str, Any], data: st.DataObject) -> None:
    harness = Harness(compile_workflow(spec), ExecutionState(execution_id="ex1"))
    harness.send(cmd.Start("wf", data.draw(inputs_for(spec.get("input")))))
    drive_to_the_end(harness, data)


@given(
    policy=st.builds(
        Retry,
        max_attempts=st.integers(1, 1000),
        initial_interval_ms=st.integers(0, MAX_DURATION_MS),
        backoff_coefficient=st.floats(1.0, 100.0),
        max_interval_ms=st.integers(0, MAX_DURATION_MS),
        jitter=st.floats(0.0, 1.0),
        non_retryable_errors=st.just(frozenset()),
    ),
    failed_attempt=st.integers(1, 1000),
    seed=st.text(max_size=20),
)
@example(Retry(1000, 1000, 100.0, 60_000, 0.1, frozenset()), 999, "x").via("100.0 ** 998 overflowed a float")
@example(Retry(1000, 0, 3.0, 60_000, 0.0, frozenset()), 1000, "x").via("0 * inf is nan")
def test_the_backoff_is_never_negative_and_never_over_its_jittered_cap(
    policy: Retry, failed_attempt: int, seed: str
) -> None:
    delay = backoff_ms(policy, failed_attempt=failed_attempt, seed=seed)
    assert 0 <= delay <= policy.max_interval_ms * (1 + policy.jitter) + 1


# -- regressions found by the properties above -------------------------------------------------


def started(spec: dict[str, Any], input: Any = None) -> Harness:
    harness = Harness(compile_workflow(spec), ExecutionState(execution_id="ex1"))
    harness.send(cmd.Start("wf", input))
    return harness


def only_task(harness: Harness, step: str) -> str:
    (token,) = [t for t, task in harness.tasks.items() if task.step == step]
    return token


def test_a_retry_after_of_any_uint64_delay_is_bounded_to_what_the_store_can_hold() -> None:
    harness = started({"timeline": ["a"]})
    token = only_task(harness, "a")
    harness.start_task(token, "w1")
    harness.send(cmd.TaskCompleted(token, cmd.OutcomeRetryAfter(2**64 - 1)))
    assert harness.tasks[only_task(harness, "a")].visible_at_ms == harness.now_ms + MAX_DURATION_MS
    harness.check_state()


def test_a_diverge_retry_on_a_result_that_exhausts_max_attempts_dead_letters_the_step() -> None:
    harness = started(
        {
            "timeline": ["a"],
            "defaults": {"retry": {"maxAttempts": 2}},
            "diverge": {"a": [{"match": {"result": {"status": "pending"}}, "then": "retry"}]},
        }
    )
    for _ in range(2):
        harness.start_task(only_task(harness, "a"), "w1")
        harness.send(cmd.TaskCompleted(only_task(harness, "a"), cmd.OutcomeSuccess({"status": "pending"})))
    assert harness.state.phase == ExecutionPhase.FAILED
    assert "the result matched diverge.a[0] (after 2 attempts)" in (harness.state.error or "")
    (dead_letter,) = harness.dead_letters
    harness.send(cmd.Redrive(dead_letter))  # the next round's dead letter gets an id of its own
    for _ in range(2):
        harness.start_task(only_task(harness, "a"), "w1")
        harness.send(cmd.TaskCompleted(only_task(harness, "a"), cmd.OutcomeSuccess({"status": "pending"})))
    assert len(harness.dead_letters) == 2
    harness.check_state()


@pytest.mark.parametrize(
    "outcome",
    [cmd.OutcomeSuccess({"ok": True}), cmd.OutcomeFailure("Boom", "it broke")],
    ids=["success", "failure"],
)
def test_a_diverge_condition_failing_at_run_time_ends_the_history_with_the_failure(outcome: cmd.Outcome) -> None:
    harness = started({"timeline": ["a", "b"], "diverge": {"a": [{"when": "result.missing.deeper", "then": "fail"}]}})
    harness.start_task(only_task(harness, "a"), "w1")
    harness.send(cmd.TaskCompleted(only_task(harness, "a"), outcome))
    assert harness.history[-1].event.kind == "ExecutionFailed"
    assert "diverge.a[0]" in (harness.state.error or "")
    assert not harness.tasks
    harness.check_state()


def test_an_approval_whose_diverge_rule_jumps_waits_for_its_group_and_survives_a_replay() -> None:
    harness = started(
        {
            "timeline": [["go", "b"], "c", "d"],
            "steps": {"go": {"approval": {}}},
            "diverge": {"go": [{"match": {"result": {"approved": True}}, "goto": "d"}]},
        }
    )
    harness.send(cmd.Approve("go", "alice"))
    harness.check_state()  # the pending jump is in the history, not only in memory
    harness.start_task(only_task(harness, "b"), "w1")
    harness.send(cmd.TaskCompleted(only_task(harness, "b"), cmd.OutcomeSuccess(1)))
    assert [t.step for t in harness.tasks.values()] == ["d"]
    assert harness.state.steps["c"].phase == StepPhase.SKIPPED
    harness.check_state()


@pytest.mark.parametrize(
    ("expression", "output"),
    [
        ("{'at': timestamp('2020-01-01T00:00:00.5Z')}", {"at": "2020-01-01T00:00:00.500000Z"}),
        ("duration('1h1.5s')", "3601.5s"),
        ("b'abc'", "YWJj"),
        ("{2: 'two', true: 'yes'}", {"2": "two", "true": "yes"}),
        ("optional.of(1)", 1),
        ("optional.none()", None),
    ],
)
def test_an_output_expression_of_a_cel_type_json_has_no_literal_for_is_stored_as_json(
    expression: str, output: Any
) -> None:
    harness = started({"timeline": ["a"], "output": expression})
    harness.start_task(only_task(harness, "a"), "w1")
    harness.send(cmd.TaskCompleted(only_task(harness, "a"), cmd.OutcomeSuccess(None)))
    assert harness.state.phase == ExecutionPhase.SUCCEEDED and harness.state.output == output
    harness.check_state()


def test_an_output_expression_giving_nan_fails_the_execution_naming_the_output() -> None:
    harness = started({"timeline": ["a"], "output": "double('nan')"})
    harness.start_task(only_task(harness, "a"), "w1")
    harness.send(cmd.TaskCompleted(only_task(harness, "a"), cmd.OutcomeSuccess(None)))
    assert harness.state.phase == ExecutionPhase.FAILED
    assert "output: CEL gave nan" in (harness.state.error or "")
    harness.check_state()
