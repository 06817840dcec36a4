"""`ExecutionState.clone`: a copy equal to the original, that a decision can change without touching it."""

from __future__ import annotations

from dataclasses import fields

from cerebelum_operator.engine.state import ExecutionState, StepPhase, StepState


def _every_field_set() -> ExecutionState:
    """A state whose every field differs from its default, so a field the copy forgot shows."""
    state = ExecutionState("e")
    for f in fields(ExecutionState):
        value = getattr(state, f.name)
        match value:
            case dict():
                setattr(state, f.name, {"k": StepState(run=1)} if f.name == "steps" else {"k": 1})
            case set():
                setattr(state, f.name, {"k"})
            case list():
                setattr(state, f.name, ["k"])
            case bool():
                setattr(state, f.name, not value)
            case int():
                setattr(state, f.name, value + 7)
            case str() if f.name not in ("phase",):
                setattr(state, f.name, value + "x")
            case None:
                setattr(state, f.name, "set")
    state.fan_outs = {}
    return state


def test_a_clone_copies_every_field() -> None:
    state = _every_field_set()
    copy = state.clone()
    for f in fields(ExecutionState):
        if f.name != "owned_steps":
            assert getattr(copy, f.name) == getattr(state, f.name), f.name
    assert copy.owned_steps == set()


def test_changing_a_clone_leaves_the_original_alone() -> None:
    state = ExecutionState("e", steps={"a": StepState(), "b": StepState()})
    copy = state.clone()
    copy.step("a").phase = StepPhase.RUNNING
    copy.results["a"] = 1
    copy.finished_tokens.add("t")
    assert state.steps["a"].phase == StepPhase.PENDING
    assert copy.steps["b"] is state.steps["b"]  # untouched steps stay shared (copy on write)
    assert state.results == {} and state.finished_tokens == set()
