"""The run of a step (the idempotency key's last part): +1 per jump or redrive, kept across retries."""

from __future__ import annotations

from cerebelum_operator.engine import ExecutionPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.ids import TaskToken

from .simulator import Simulator

FAIL = cmd.OutcomeFailure("Boom", "it broke")
RETRY = {"retry": {"maxAttempts": 3, "initialInterval": "1s", "jitter": 0}}


def leased(sim: Simulator, step: str) -> list[tuple[int, int]]:
    """(run, attempt) of every lease of `step`'s tasks, in order."""
    return [
        (lease.run, TaskToken.parse(lease.token).attempt) for lease in sim.leases if lease.token.split("/")[1] == step
    ]


def test_a_goto_loop_starts_a_new_run_each_iteration_and_retries_keep_theirs() -> None:
    spec = {
        "timeline": ["a", "b"],
        "defaults": RETRY,
        "branch": {"b": [{"when": "true", "goto": "a", "maxIterations": 2}]},
    }
    sim = Simulator.start(spec)
    for _ in range(3):
        sim.run("a", FAIL)  # every iteration's first attempt fails and is retried
        sim.run("a")
        sim.run("b")

    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert leased(sim, "a") == [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]
    assert leased(sim, "b") == [(1, 1), (2, 1), (3, 1)]
    assert sim.replayed().steps["a"].run == 3


def test_retry_after_polls_belong_to_the_run_they_poll() -> None:
    sim = Simulator.start({"timeline": ["a"]})
    sim.run("a", cmd.OutcomeRetryAfter(1000))
    sim.run("a", cmd.OutcomeRetryAfter(1000))
    sim.run("a")

    assert leased(sim, "a") == [(1, 1), (1, 1), (1, 1)]


def test_a_redriven_step_starts_a_new_run() -> None:
    sim = Simulator.start({"timeline": ["a", "b"], "defaults": {"retry": {"maxAttempts": 2}}})
    sim.run("a", FAIL)
    sim.run("a", FAIL)
    (dead_letter,) = sim.dead_letters
    sim.send(cmd.Redrive(dead_letter))
    sim.run("a")
    sim.run("b")

    assert leased(sim, "a") == [(1, 1), (1, 2), (2, 1)]
    assert leased(sim, "b") == [(1, 1)]
    assert sim.replayed().steps["a"].run == 2


def test_each_member_of_a_parallel_group_counts_its_own_runs() -> None:
    spec = {
        "timeline": [["a", "b"], "c"],
        "defaults": RETRY,
        "branch": {"c": [{"when": "true", "goto": "a", "maxIterations": 1}]},
    }
    sim = Simulator.start(spec)
    sim.run("b", FAIL)
    sim.run("a")
    sim.run("b")
    sim.run("c")
    sim.run("a")
    sim.run("b")
    sim.run("c")

    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert leased(sim, "a") == [(1, 1), (2, 1)]
    assert leased(sim, "b") == [(1, 1), (1, 2), (2, 1)]


def test_a_step_skipped_by_a_forward_jump_has_not_run_until_it_runs() -> None:
    spec = {
        "timeline": ["a", "b", "c"],
        "branch": {
            "a": [{"when": "!has(input.again)", "goto": "c"}],
            "c": [{"when": "true", "goto": "a", "maxIterations": 1}],
        },
    }
    sim = Simulator.start(spec, {})
    sim.run("a")
    assert sim.state.steps["b"].run == 0
    sim.run("c")
    sim.run("a")  # the branch skips b again: the condition reads the input, which has not changed
    sim.run("c")

    assert leased(sim, "b") == []
    assert [run for run, _ in leased(sim, "a")] == [1, 2]


def test_replaying_a_history_gives_the_runs_the_engine_had() -> None:
    spec = {
        "timeline": ["a", "b"],
        "defaults": RETRY,
        "branch": {"b": [{"when": "true", "goto": "a", "maxIterations": 3}]},
    }
    sim = Simulator.start(spec)
    sim.run("a")
    sim.run("b")
    sim.run("a", FAIL)

    replayed = sim.replayed()
    assert {n: s.run for n, s in replayed.steps.items()} == {"a": 2, "b": 1}
    assert replayed == sim.state
