"""Continuations: a code step's worker runs the code on the step's result and sends its commands with it.

The engine records them as the next workflow task, in the same decision as the result, only when that
result is all the code has not seen and the sender holds the code's instance where it says.
"""

from __future__ import annotations

from typing import Any

from cerebelum_operator.engine import ExecutionPhase, Reply
from cerebelum_operator.engine import actions as act
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.code_decisions import MAX_CLOCK_SKEW_MS
from cerebelum_operator.engine.ids import WORKFLOW_TASK_STEP, TaskToken

from .simulator import Simulator
from .test_code_workflows import CODE, answer, step, workflow_task


def started(sim: Simulator) -> Simulator:
    """An execution whose code (answered by w1) waits for step ``a#1``, leased to w1."""
    answer(sim, [step(1, "a")])
    task = sim.task("a#1")
    assert sim.send(cmd.TaskStarted(task.token, "w1")) == Reply.ACCEPTED
    return sim


def after_seq(sim: Simulator) -> int:
    assert sim.state.sticky is not None
    return sim.state.sticky[1]


def complete_with(
    sim: Simulator,
    commands: Any,
    *,
    worker: str = "w1",
    after: int | None = None,
    time_ms: int | None = None,
    outcome: cmd.Outcome | None = None,
) -> Reply:
    task = sim.task("a#1")
    continuation = cmd.Continuation(
        after_seq=after_seq(sim) if after is None else after,
        time_ms=sim.now_ms if time_ms is None else time_ms,
        commands=commands,
    )
    return sim.send(
        cmd.TaskCompleted(
            task.token, outcome or cmd.OutcomeSuccess({"ok": 1}), worker_id=worker, continuation=continuation
        )
    )


def test_a_continuation_records_the_result_and_the_next_workflow_task_in_one_decision() -> None:
    sim = started(Simulator.start(CODE))
    sim.now_ms += 5
    before = len(sim.history)

    assert complete_with(sim, [step(2, "b")], time_ms=sim.now_ms - 2) == Reply.ACCEPTED

    recorded = sim.history[before:]
    assert [r.event.kind for r in recorded] == [
        "StepCompleted",
        "WorkflowTaskScheduled",
        "WorkflowTaskStarted",
        "WorkflowTaskCompleted",
        "StepScheduled",
    ]
    task_started = recorded[2]
    assert task_started.event.time_ms == sim.now_ms - 2  # type: ignore[attr-defined]
    assert task_started.event.to_data()["time_ms"] == sim.now_ms - 2
    assert sim.last_decision is not None and sim.last_decision.continued_seq == task_started.seq
    assert sim.state.sticky == ("w1", task_started.seq)
    assert sim.state.code_time_ms == sim.now_ms - 2
    schedules = [a for a in sim.last_decision.actions if isinstance(a, act.ScheduleTask)]
    assert [TaskToken.parse(a.token).step for a in schedules] == ["b#2"], "no workflow task is queued"
    assert schedules[0].sticky_worker_id == "w1", "the next step goes to the worker holding the code"
    assert sim.replayed() == sim.state


def test_a_continuation_that_ends_the_code_ends_the_execution() -> None:
    sim = started(Simulator.start(CODE))
    complete_with(sim, [{"type": "complete", "output": {"done": True}}])
    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert sim.state.output == {"done": True}
    assert not sim.tasks


def test_a_continuation_from_a_worker_that_does_not_hold_the_code_schedules_a_workflow_task_instead() -> None:
    sim = started(Simulator.start(CODE))
    sim.state.sticky = ("w2", after_seq(sim))  # another worker answered the code's last task

    complete_with(sim, [step(2, "b")])

    assert sim.kinds()[-2:] == ["StepCompleted", "WorkflowTaskScheduled"]
    assert sim.last_decision is not None and sim.last_decision.continued_seq is None
    assert workflow_task(sim) is not None


def test_a_continuation_run_on_an_older_instance_is_not_recorded() -> None:
    sim = started(Simulator.start(CODE))
    complete_with(sim, [step(2, "b")], after=after_seq(sim) - 1)
    assert sim.kinds()[-1] == "WorkflowTaskScheduled"
    assert sim.last_decision is not None and sim.last_decision.continued_seq is None


def test_a_continuation_is_not_recorded_when_the_code_has_other_news_to_see() -> None:
    sim = Simulator.start({**CODE})
    answer(sim, [step(1, "a"), {"type": "sleep", "id": 2, "duration": "1s"}])
    task = sim.task("a#1")
    sim.send(cmd.TaskStarted(task.token, "w1"))
    sim.fire_timers()  # the sleep ended before the step: the code must see both
    assert sim.state.workflow_task is not None
    sticky = after_seq(sim)

    complete_with(sim, [step(3, "b")], after=sticky)

    assert "WorkflowTaskStarted" not in sim.kinds()[-2:]
    assert sim.last_decision is not None and sim.last_decision.continued_seq is None
    assert "b#3" not in {TaskToken.parse(t).step for t in sim.tasks}


def test_a_continuation_whose_time_is_before_the_code_s_last_time_or_past_the_clock_skew_is_not_recorded() -> None:
    for time_ms in (-1, +1):
        sim = started(Simulator.start(CODE))
        sim.now_ms += 10
        when = sim.state.code_time_ms - 1 if time_ms < 0 else sim.now_ms + MAX_CLOCK_SKEW_MS + 1
        complete_with(sim, [step(2, "b")], time_ms=when)
        assert sim.last_decision is not None and sim.last_decision.continued_seq is None, time_ms
        assert sim.kinds()[-1] == "WorkflowTaskScheduled"


def test_a_worker_clock_a_little_ahead_still_continues_and_the_code_s_time_never_goes_back() -> None:
    sim = started(Simulator.start(CODE))
    ahead = sim.now_ms + 400  # the worker's clock runs 400 ms ahead of the engine's
    complete_with(sim, [step(2, "b"), {"type": "sleep", "id": 3, "duration": "1ms"}], time_ms=ahead)
    assert sim.last_decision is not None and sim.last_decision.continued_seq is not None
    sim.run("b#2", worker="w2")  # on another worker: no continuation, a workflow task as usual
    sim.fire_timers()
    task = workflow_task(sim)
    sim.send(cmd.TaskStarted(task.token, "w1"))

    started_again = sim.history[-1].event
    assert started_again.kind == "WorkflowTaskStarted"
    assert started_again.time_ms == ahead, "started before the code's last time: given that time"  # type: ignore[attr-defined]
    assert sim.state.code_time_ms == ahead


def test_a_continuation_with_a_failed_step_is_not_recorded_the_failure_is() -> None:
    sim = started(Simulator.start(CODE))
    complete_with(sim, [step(2, "b")], outcome=cmd.OutcomeFailure("Boom", "no", retryable=False))
    assert sim.kinds()[-2:] == ["StepFailed", "WorkflowTaskScheduled"]
    assert sim.last_decision is not None and sim.last_decision.continued_seq is None


def test_a_continuation_with_refused_commands_fails_its_workflow_task_and_another_replays() -> None:
    sim = started(Simulator.start(CODE))
    complete_with(sim, [step(7, "b")])  # id 7 where 2 is expected

    assert sim.kinds()[-5:] == [
        "StepCompleted",
        "WorkflowTaskScheduled",
        "WorkflowTaskStarted",
        "WorkflowTaskFailed",
        "WorkflowTaskScheduled",  # the retry, after the backoff
    ]
    assert sim.last_decision is not None and sim.last_decision.continued_seq is None
    assert sim.state.sticky is None, "the next task replays from the start"
    retry = workflow_task(sim)
    assert TaskToken.parse(retry.token).step == WORKFLOW_TASK_STEP
    assert sim.state.phase == ExecutionPhase.RUNNING


def test_a_step_completed_twice_with_a_continuation_records_it_once() -> None:
    sim = started(Simulator.start(CODE))
    token = sim.task("a#1").token
    complete_with(sim, [step(2, "b")])
    history = len(sim.history)

    again = cmd.Continuation(after_seq=1, time_ms=sim.now_ms, commands=[step(2, "b")])
    reply = sim.send(cmd.TaskCompleted(token, cmd.OutcomeSuccess({"ok": 1}), worker_id="w1", continuation=again))

    assert reply != Reply.ACCEPTED
    assert len(sim.history) == history
