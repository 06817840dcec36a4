"""A failed step's stack trace is recorded with its failure, bounded, and old histories still load."""

from __future__ import annotations

from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.events import StepFailed, event_from_record
from cerebelum_operator.model import limits

from .simulator import Simulator

TRACE = 'Traceback (most recent call last):\n  File "steps.py", line 3, in charge\nValueError: card [/declined]\n'


def failures(sim: Simulator) -> list[StepFailed]:
    return [r.event for r in sim.history if isinstance(r.event, StepFailed)]


def test_the_workers_stack_trace_is_kept_in_the_failure_event_and_the_steps_state() -> None:
    sim = Simulator.start({"timeline": ["a"], "defaults": {"retry": {"maxAttempts": 2}}})
    sim.run("a", cmd.OutcomeFailure("ValueError", "card [/declined]", stacktrace=TRACE))

    (failed,) = failures(sim)
    assert failed.stacktrace == TRACE
    assert sim.state.steps["a"].last_stacktrace == TRACE
    assert sim.replayed() == sim.state  # rebuilt from the history alone


def test_the_next_failure_replaces_the_stack_trace_even_with_none() -> None:
    sim = Simulator.start({"timeline": ["a"], "defaults": {"retry": {"maxAttempts": 3}}})
    sim.run("a", cmd.OutcomeFailure("ValueError", "first", stacktrace=TRACE))
    sim.run("a", cmd.OutcomeFailure("Timeout", "second"))

    assert sim.state.steps["a"].last_error == "Timeout: second"
    assert sim.state.steps["a"].last_stacktrace == ""  # not the first failure's trace under the second's error


def test_a_stack_trace_over_the_limit_keeps_both_ends_around_a_marker() -> None:
    head = "Traceback (most recent call last):\n"
    tail = "RecursionError: maximum recursion depth exceeded\n"
    huge = head + '  File "r.py", line 2, in r\n' * 10_000 + tail
    sim = Simulator.start({"timeline": ["a"], "defaults": {"retry": {"maxAttempts": 1}}})
    sim.run("a", cmd.OutcomeFailure("RecursionError", "deep", stacktrace=huge))

    (failed,) = failures(sim)
    assert len(failed.stacktrace) <= limits.MAX_STACKTRACE < len(huge)
    assert failed.stacktrace.startswith(head) and failed.stacktrace.endswith(tail)
    assert "characters of the stack trace cut here: it is kept to 32,768" in failed.stacktrace


def test_cut_middle_says_exactly_how_much_it_cut() -> None:
    text = "a" * 500 + "b" * 500
    kept = limits.cut_middle(text, limit=200, what="stack trace")

    before, _, rest = kept.partition("\n… [")
    count, _, after = rest.partition(" characters of the stack trace cut here: it is kept to 200] …\n")
    assert len(kept) <= 200
    assert set(before) == {"a"} and set(after) == {"b"}
    assert int(count.replace(",", "")) == len(text) - len(before) - len(after)
    assert limits.cut_middle("short", limit=200, what="stack trace") == "short"


def test_a_failure_recorded_before_stack_traces_were_kept_loads_with_none() -> None:
    stored = {
        "step": "a",
        "attempt": 1,
        "token": "ex1/a/1/0/2",
        "error_type": "Boom",
        "message": "it broke",
        "retryable": True,
        "retry_at_ms": None,
        "continued": False,
        "rule": None,
        "goto": None,
    }
    event = event_from_record("StepFailed", stored)

    assert isinstance(event, StepFailed) and event.stacktrace == ""
