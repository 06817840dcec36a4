"""Limits the engine core enforces itself, each refused with a message that names the limit."""

from __future__ import annotations

from cerebelum_operator.engine import ExecutionState, decide
from cerebelum_operator.engine import actions as act
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model import compile_workflow

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
    assert "continue as new" in state.error
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
