"""scheduleToStartTimeout: a task no worker takes fails its attempt instead of waiting forever.

Driven through `decide` on the simulator's clock: the timer starts when the task is scheduled (from
when it becomes visible), is cancelled when a worker leases the task, and on expiry fails the
attempt as `ScheduleToStartTimeout`, not retried unless a diverge rule says so.
"""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase, Reply, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.events import StepFailed
from cerebelum_operator.engine.ids import TaskToken
from cerebelum_operator.model import WorkflowInvalid, compile_workflow

from .simulator import Simulator

MINUTE = 60_000


def spec(**extra: Any) -> dict[str, Any]:
    return {"timeline": ["a", "b"], "defaults": {"scheduleToStartTimeout": "1m", "retry": {"maxAttempts": 3}}, **extra}


def failures(sim: Simulator) -> list[StepFailed]:
    return [r.event for r in sim.history if isinstance(r.event, StepFailed)]


def test_a_task_no_worker_takes_fails_for_good_when_the_timeout_passes() -> None:
    sim = Simulator.start(spec())
    token = sim.task("a").token
    assert sim.timers == {"ex1/schedule-to-start/a/2": sim.now_ms + MINUTE}

    sim.fire_timers()

    (failed,) = failures(sim)
    assert (failed.step, failed.token, failed.error_type, failed.retryable) == (
        "a",
        token,
        "ScheduleToStartTimeout",
        False,
    )
    assert "no worker took the task within the step's scheduleToStartTimeout (1m)" in failed.message
    assert "task queue 'default'" in failed.message
    # Not retried although maxAttempts is 3: another attempt would wait for the same absent workers.
    assert sim.state.phase == ExecutionPhase.FAILED and not sim.tasks
    assert sim.dead_letters == {token}
    assert sim.replayed() == sim.state


def test_a_worker_that_takes_the_task_in_time_cancels_the_timer() -> None:
    sim = Simulator.start(spec())
    sim.now_ms += MINUTE - 1
    sim.run("a")

    assert list(sim.timers) == ["ex1/schedule-to-start/b/5"]  # b's, just scheduled; a's is gone
    sim.run("b")
    assert sim.state.phase == ExecutionPhase.SUCCEEDED and not sim.timers


def test_the_timer_of_a_task_leased_meanwhile_is_stale_and_changes_nothing() -> None:
    sim = Simulator.start(spec())
    (timer,) = sim.timers
    sim.send(cmd.TaskStarted(sim.task("a").token, "w1"))
    events = len(sim.history)

    assert sim.send(cmd.TimerFired(timer)) == Reply.STALE
    assert len(sim.history) == events and sim.state.steps["a"].phase == StepPhase.RUNNING


def test_a_timer_naming_another_execution_or_task_changes_nothing() -> None:
    sim = Simulator.start(spec())
    events = len(sim.history)

    assert sim.send(cmd.TimerFired("ex2/schedule-to-start/a/2")) == Reply.STALE
    assert sim.send(cmd.TimerFired("ex1/schedule-to-start/a/99")) == Reply.STALE
    assert len(sim.history) == events and sim.state.steps["a"].phase == StepPhase.SCHEDULED


def test_a_diverge_rule_on_the_error_type_can_retry_the_step() -> None:
    rules = {"a": [{"match": {"error": {"type": "ScheduleToStartTimeout"}}, "then": "retry"}]}
    sim = Simulator.start(spec(diverge=rules))
    sim.fire_timers()

    assert sim.task("a").attempt == 2 and sim.state.phase == ExecutionPhase.RUNNING
    sim.run("a")
    assert sim.state.steps["a"].phase == StepPhase.SUCCEEDED


def test_a_diverge_rule_can_continue_past_a_step_nobody_serves() -> None:
    rules = {"a": [{"match": {"error": {"type": "ScheduleToStartTimeout"}}, "then": "continue"}]}
    sim = Simulator.start(spec(diverge=rules))
    sim.fire_timers()

    assert sim.task("b").attempt == 1
    assert sim.state.results["a"]["error"]["type"] == "ScheduleToStartTimeout"


def test_a_retry_waits_its_backoff_before_the_timeout_starts_counting() -> None:
    sim = Simulator.start(
        spec(defaults={"scheduleToStartTimeout": "1m", "retry": {"initialInterval": "10s", "jitter": 0}})
    )
    sim.run("a", cmd.OutcomeFailure("Boom", "it broke"))
    retry = sim.task("a")

    assert retry.attempt == 2 and retry.visible_at_ms == sim.now_ms + 10_000
    assert sim.timers == {f"ex1/schedule-to-start/a/{TaskToken.parse(retry.token).seq}": retry.visible_at_ms + MINUTE}


def test_the_steps_own_timeout_overrides_the_default_and_steps_without_one_wait_forever() -> None:
    sim = Simulator.start({"timeline": [["a", "b"]], "steps": {"a": {"scheduleToStartTimeout": "5s"}}})

    assert list(sim.timers.values()) == [sim.now_ms + 5_000]
    sim.fire_timers()
    assert sim.state.steps["a"].phase == StepPhase.FAILED
    assert sim.state.phase == ExecutionPhase.FAILED


def test_cancelling_an_execution_cancels_the_timers_of_its_waiting_tasks() -> None:
    sim = Simulator.start(spec())
    sim.send(cmd.Cancel("no longer needed"))

    assert sim.state.phase == ExecutionPhase.CANCELLED and not sim.timers


def test_a_redriven_step_gets_a_new_timer() -> None:
    sim = Simulator.start(spec())
    sim.fire_timers()
    (dead_letter,) = sim.dead_letters
    sim.send(cmd.Redrive(dead_letter))

    (timer,) = sim.timers
    assert timer == f"ex1/schedule-to-start/a/{TaskToken.parse(sim.task('a').token).seq}"
    sim.run("a")
    assert not [t for t in sim.timers if "/a/" in t]


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (
            {"timeline": ["gate"], "steps": {"gate": {"approval": {}, "scheduleToStartTimeout": "1m"}}},
            "steps.gate.scheduleToStartTimeout: an approval or timer step has no task for a worker to start",
        ),
        (
            {"timeline": ["a"], "defaults": {"scheduleToStartTimeout": "0s"}},
            "defaults.scheduleToStartTimeout: must be longer than 0s",
        ),
        (
            {"timeline": ["a"], "defaults": {"scheduleToStartTimeout": "soon"}},
            "defaults.scheduleToStartTimeout: Value error, bad duration 'soon'",
        ),
    ],
)
def test_a_schedule_to_start_timeout_that_cannot_apply_is_refused(document: dict[str, Any], problem: str) -> None:
    with pytest.raises(WorkflowInvalid, match=problem.replace(".", r"\.").replace("(", r"\(")):
        compile_workflow(document)


def test_the_default_does_not_apply_to_approval_steps() -> None:
    definition = compile_workflow(
        {"timeline": ["a", "gate"], "steps": {"gate": {"approval": {}}}, "defaults": {"scheduleToStartTimeout": "1m"}}
    )
    assert definition.steps["a"].schedule_to_start_ms == MINUTE
    assert definition.steps["gate"].schedule_to_start_ms is None
