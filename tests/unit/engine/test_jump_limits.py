"""A loop cut at its `maxIterations` says so: a JumpLimitReached event (issue 16)."""

from __future__ import annotations

from cerebelum_operator.engine import ExecutionPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine import events as ev
from cerebelum_operator.engine.state import JumpLimit

from .simulator import Simulator

FAIL = cmd.OutcomeFailure("Boom", "it broke")


def refusals(sim: Simulator) -> list[ev.JumpLimitReached]:
    return [r.event for r in sim.history if isinstance(r.event, ev.JumpLimitReached)]


def test_a_branch_loop_cut_at_its_bound_records_it_and_the_execution_goes_on() -> None:
    spec = {
        "timeline": ["a", "b", "c"],
        "branch": {"b": [{"when": "result.b == true", "goto": "a", "maxIterations": 2}]},
    }
    sim = Simulator.start(spec)
    for _ in range(3):
        sim.run("a")
        sim.run("b")
    sim.run("c")

    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert refusals(sim) == [ev.JumpLimitReached("b", "a", 2, "branch.b[0]")]
    # Recorded when b's rules are evaluated for the last time: after b completed, before c is scheduled.
    at = sim.kinds().index("JumpLimitReached")
    before, after = sim.history[at - 1].event, sim.history[at + 1].event
    assert isinstance(before, ev.StepCompleted) and before.step == "b"
    assert isinstance(after, ev.StepScheduled) and after.step == "c"
    assert sim.state.jump_limits == {"branch.b[0]": JumpLimit("b", "a", 2)}
    assert sim.replayed() == sim.state


def test_a_loop_ended_by_its_condition_records_nothing() -> None:
    spec = {"timeline": ["a", "b"], "branch": {"b": [{"when": "!has(steps.a.done)", "goto": "a", "maxIterations": 5}]}}
    sim = Simulator.start(spec)
    sim.run("a", cmd.OutcomeSuccess({}))
    sim.run("b")
    sim.run("a", cmd.OutcomeSuccess({"done": True}))
    sim.run("b")

    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert refusals(sim) == [] and sim.state.jump_limits == {}


def test_a_diverge_goto_refused_by_its_bound_is_recorded_after_the_failure_it_follows() -> None:
    spec = {
        "timeline": ["a", "b"],
        "defaults": {"retry": {"maxAttempts": 1}},
        "diverge": {"b": [{"match": {"error": {"type": "Boom"}}, "goto": "a", "maxIterations": 1}]},
    }
    sim = Simulator.start(spec)
    sim.run("a")
    sim.run("b", FAIL)  # jumps back once
    sim.run("a")
    sim.run("b", FAIL)  # the bound refuses the jump: the failure takes its course

    assert sim.state.phase == ExecutionPhase.FAILED
    assert refusals(sim) == [ev.JumpLimitReached("b", "a", 1, "diverge.b[0]")]
    kinds = sim.kinds()
    at = kinds.index("JumpLimitReached")
    assert kinds[at - 1] == "StepFailed" and "ExecutionFailed" in kinds[at:]
    assert sim.replayed() == sim.state


def test_every_refusal_counts_when_an_outer_loop_comes_back_to_a_cut_inner_loop() -> None:
    spec = {
        "timeline": ["a", "b", "c"],
        "branch": {
            "b": [{"when": "result.b == true", "goto": "b", "maxIterations": 1}],
            "c": [{"when": "result.c == true", "goto": "a", "maxIterations": 1}],
        },
    }
    sim = Simulator.start(spec)
    for step in ("a", "b", "b", "c", "a", "b", "c"):
        sim.run(step)

    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert [(e.rule, e.bound) for e in refusals(sim)] == [("branch.b[0]", 1), ("branch.b[0]", 1), ("branch.c[0]", 1)]
    assert sim.state.jump_limits["branch.b[0]"] == JumpLimit("b", "b", 1, times=2)


def test_the_event_loads_from_its_stored_form_without_its_optional_rule() -> None:
    assert ev.event_from_record("JumpLimitReached", {"step": "b", "target": "a", "bound": 3}) == ev.JumpLimitReached(
        "b", "a", 3
    )
