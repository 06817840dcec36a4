"""Only the worker holding an attempt's lease may finish it: `decide` judges from the history."""

from __future__ import annotations

from cerebelum_operator.engine import Reply, StepPhase
from cerebelum_operator.engine import commands as cmd

from .simulator import Simulator

FLOW = {"timeline": ["a", "b"]}


def test_a_completion_for_a_task_nobody_leased_is_stale_and_recorded_nowhere() -> None:
    sim = Simulator.start(FLOW)
    task = sim.task("a")
    before = list(sim.history)

    reply = sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess("forged"), worker_id="intruder"))
    anonymous = sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess("forged")))

    assert (reply, anonymous) == (Reply.STALE, Reply.STALE)
    assert sim.history == before
    assert sim.state.steps["a"].phase == StepPhase.SCHEDULED and task.token in sim.tasks


def test_a_completion_from_a_worker_that_does_not_hold_the_lease_is_stale() -> None:
    sim = Simulator.start(FLOW)
    task = sim.task("a")
    sim.send(cmd.TaskStarted(task.token, "holder"))

    forged = sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess("forged"), worker_id="intruder"))
    real = sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess("real"), worker_id="holder"))

    assert (forged, real) == (Reply.STALE, Reply.ACCEPTED)
    assert sim.state.results["a"] == "real"
    assert sim.kinds().count("StepCompleted") == 1


def test_the_holder_of_an_earlier_attempt_cannot_finish_the_retry_leased_to_another_worker() -> None:
    sim = Simulator.start({"timeline": ["a"], "defaults": {"retry": {"maxAttempts": 3, "jitter": 0}}})
    sim.run("a", cmd.OutcomeFailure("Boom", "it broke"), worker="first")
    retry = sim.task("a")
    sim.now_ms = retry.visible_at_ms
    sim.send(cmd.TaskStarted(retry.token, "second"))

    assert sim.send(cmd.TaskCompleted(retry.token, cmd.OutcomeSuccess(1), worker_id="first")) == Reply.STALE
    assert sim.send(cmd.TaskCompleted(retry.token, cmd.OutcomeSuccess(2), worker_id="second")) == Reply.ACCEPTED


def test_the_lease_holder_is_known_again_after_a_replay_of_the_history() -> None:
    sim = Simulator.start(FLOW)
    task = sim.task("a")
    sim.send(cmd.TaskStarted(task.token, "holder"))
    sim.state = sim.replayed()  # what an engine restart rebuilds from the store

    assert sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess(0), worker_id="intruder")) == Reply.STALE
    assert sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess(1), worker_id="holder")) == Reply.ACCEPTED
