"""A failed or expired attempt's last heartbeat progress goes to the step's next attempt, through the history."""

from __future__ import annotations

from cerebelum_operator.engine import actions as act
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine import decide
from cerebelum_operator.engine.events import StepFailed, event_from_record
from tests.unit.engine.simulator import Simulator

RETRIED = {"timeline": ["a", "b"], "defaults": {"retry": {"maxAttempts": 4, "jitter": 0}}}


def lease_next(sim: Simulator, step: str = "a", worker: str = "w1") -> act.LeaseTask:
    """Lease the step's task; the lease the engine decided (what the dispatcher hands the worker)."""
    task = sim.task(step)
    sim.now_ms = max(sim.now_ms, task.visible_at_ms)
    decision = decide(sim.definition, sim.state, cmd.TaskStarted(task.token, worker), now_ms=sim.now_ms)
    sim.send(cmd.TaskStarted(task.token, worker))
    (lease,) = [a for a in decision.actions if isinstance(a, act.LeaseTask)]
    return lease


def test_a_failed_attempts_progress_is_recorded_and_leased_to_the_next_attempt_even_after_a_replay() -> None:
    sim = Simulator.start(RETRIED)
    first = lease_next(sim)
    assert first.last_progress is None
    failure = cmd.OutcomeFailure("Boom", "it broke")
    sim.send(cmd.TaskCompleted(first.token, failure, worker_id="w1", progress={"done": 3}))
    failed = [r.event for r in sim.history if isinstance(r.event, StepFailed)]
    assert failed[-1].last_progress == {"done": 3}
    sim.state = sim.replayed()  # an engine restart rebuilds it from the history
    assert lease_next(sim).last_progress == {"done": 3}


def test_an_expired_lease_keeps_its_progress_and_an_attempt_that_reports_none_keeps_the_earlier_one() -> None:
    sim = Simulator.start(RETRIED)
    first = lease_next(sim)
    sim.send(cmd.TaskTimedOut(first.token, "lease", progress="page 7"))
    second = lease_next(sim)
    assert second.last_progress == "page 7"
    sim.send(cmd.TaskTimedOut(second.token, "heartbeat"))  # the second attempt sent no progress
    assert lease_next(sim).last_progress == "page 7"


def test_a_success_clears_the_progress_so_a_later_step_or_run_starts_clean() -> None:
    sim = Simulator.start(RETRIED)
    first = lease_next(sim)
    sim.send(cmd.TaskCompleted(first.token, cmd.OutcomeFailure("Boom", "x"), worker_id="w1", progress=1))
    second = lease_next(sim)
    sim.send(cmd.TaskCompleted(second.token, cmd.OutcomeSuccess("ok"), worker_id="w1"))
    assert sim.state.steps["a"].last_progress is None
    assert lease_next(sim, "b").last_progress is None, "progress belongs to its own step"


def test_a_step_failed_event_of_an_older_release_without_progress_still_loads() -> None:
    old = {
        "step": "a",
        "attempt": 1,
        "token": "ex1/a/1/0/2",
        "error_type": "Boom",
        "message": "it broke",
        "retryable": True,
        "retry_at_ms": 5,
        "continued": False,
        "rule": None,
        "goto": None,
    }
    event = event_from_record("StepFailed", old)
    assert isinstance(event, StepFailed) and event.last_progress is None
