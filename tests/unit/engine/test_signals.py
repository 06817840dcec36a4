"""Signals: queued in order, each taken once by one signal step, kept until a step waits for it."""

from __future__ import annotations

import pytest

from cerebelum_operator.engine import CommandRejected, ExecutionPhase, Reply, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.decide import CommandTooLarge
from cerebelum_operator.model import limits

from .simulator import Simulator

THREE_WAITS = {
    "timeline": ["first", "second", "third"],
    "steps": {name: {"signal": {"name": "go"}} for name in ("first", "second", "third")},
    "output": "[steps.first.data, steps.second.data, steps.third.data]",
}


def test_signals_sent_before_anyone_waits_are_kept_and_taken_in_order_exactly_once() -> None:
    sim = Simulator.start(
        {"timeline": ["work", *THREE_WAITS["timeline"]], **{k: v for k, v in THREE_WAITS.items() if k != "timeline"}}
    )
    for n in range(4):
        assert sim.send(cmd.Signal("go", n, sender="alice")) == Reply.ACCEPTED

    sim.run("work")

    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert sim.state.output == [0, 1, 2]
    assert [s.data for s in sim.state.signals] == [3]  # the fourth waits for a step that never comes
    assert sim.kinds().count("SignalDelivered") == 3
    assert sim.replayed() == sim.state


def test_back_to_back_signals_each_reach_one_waiting_step() -> None:
    sim = Simulator.start(THREE_WAITS)
    assert sim.state.display_phase() == ExecutionPhase.WAITING_FOR_SIGNAL
    assert sim.state.steps["first"].phase == StepPhase.WAITING_FOR_SIGNAL

    for n in ("a", "b", "c"):
        assert sim.send(cmd.Signal("go", n, sender="bob")) == Reply.ACCEPTED

    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert sim.state.output == ["a", "b", "c"]
    assert sim.state.results["first"]["sender"] == "bob"
    assert sim.state.results["first"]["receivedAt"].endswith("Z")


def test_a_signal_sent_again_with_its_request_id_is_delivered_once() -> None:
    sim = Simulator.start(THREE_WAITS)
    assert sim.send(cmd.Signal("go", 1, sender="a", request_id="r1")) == Reply.ACCEPTED
    assert sim.send(cmd.Signal("go", 1, sender="a", request_id="r1")) == Reply.DUPLICATE
    assert sim.state.steps["second"].phase == StepPhase.WAITING_FOR_SIGNAL
    assert sim.kinds().count("SignalReceived") == 1


def test_a_signal_no_step_waits_for_is_refused_naming_the_names_it_waits_for() -> None:
    sim = Simulator.start(THREE_WAITS)
    with pytest.raises(CommandRejected, match=r"no signal step for a signal named 'og'.*wait for: go"):
        sim.send(cmd.Signal("og", None))
    assert sim.kinds().count("SignalReceived") == 0


def test_a_signal_to_an_ended_execution_is_refused() -> None:
    sim = Simulator.start(THREE_WAITS)
    sim.send(cmd.Cancel("done"))
    with pytest.raises(CommandRejected, match="has ended \\(Cancelled\\)"):
        sim.send(cmd.Signal("go", None))


def test_the_queue_refuses_a_signal_past_its_count_limit_keeping_the_ones_before() -> None:
    sim = Simulator.start({"timeline": ["work", "w"], "steps": {"w": {"signal": {"name": "go"}}}})
    for n in range(limits.MAX_QUEUED_SIGNALS):
        sim.send(cmd.Signal("go", n))
    with pytest.raises(CommandTooLarge, match=r"1000 signals no step took yet"):
        sim.send(cmd.Signal("go", "one too many"))
    assert len(sim.state.signals) == limits.MAX_QUEUED_SIGNALS
    sim.run("work")
    assert sim.state.output == {
        "name": "go",
        "data": 0,
        "sender": "",
        "receivedAt": sim.state.results["w"]["receivedAt"],
    }


def test_a_signal_wait_times_out_into_a_failure_its_diverge_rule_can_continue_past() -> None:
    spec = {
        "timeline": ["wait", "after"],
        "steps": {"wait": {"signal": {"name": "go", "timeout": "1m"}}},
        "diverge": {"wait": [{"match": {"error": {"type": "SignalTimedOut"}}, "then": "continue"}]},
    }
    sim = Simulator.start(spec)
    sim.fire_timers()

    assert sim.state.steps["wait"].last_error == "SignalTimedOut: no signal 'go' came within the step's timeout (1m)"
    assert sim.state.results["wait"] == {
        "error": {"type": "SignalTimedOut", "message": sim.state.steps["wait"].last_error.split(": ", 1)[1]}
    }
    sim.run("after")
    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert sim.replayed() == sim.state


def test_a_signal_that_arrives_cancels_the_wait_timer() -> None:
    sim = Simulator.start({"timeline": ["wait"], "steps": {"wait": {"signal": {"name": "go", "timeout": "1h"}}}})
    assert len(sim.timers) == 1
    sim.send(cmd.Signal("go", {"x": 1}))
    assert sim.timers == {}
    assert sim.state.output["data"] == {"x": 1}


def test_cancelling_a_waiting_execution_disarms_its_signal_timer() -> None:
    sim = Simulator.start({"timeline": ["wait"], "steps": {"wait": {"signal": {"name": "go", "timeout": "1h"}}}})
    sim.send(cmd.Cancel("stop"))
    assert sim.timers == {}
    assert sim.state.signal_waits == {}
    assert sim.replayed() == sim.state


def test_two_parallel_steps_waiting_for_one_name_are_served_in_the_order_they_began_to_wait() -> None:
    spec = {"timeline": [["left", "right"]], "steps": {n: {"signal": {"name": "go"}} for n in ("left", "right")}}
    sim = Simulator.start(spec)
    sim.send(cmd.Signal("go", 1))
    taken_first = "left" if sim.state.steps["left"].phase == StepPhase.SUCCEEDED else "right"
    assert sim.state.signal_waits.keys() == {"right" if taken_first == "left" else "left"}
    sim.send(cmd.Signal("go", 2))
    assert sim.state.phase == ExecutionPhase.SUCCEEDED
    assert sim.state.results[taken_first]["data"] == 1


def test_a_signal_resent_with_its_request_id_after_the_execution_ended_is_a_duplicate_not_an_error() -> None:
    sim = Simulator.start({"timeline": ["w"], "steps": {"w": {"signal": {"name": "go"}}}})
    sim.send(cmd.Signal("go", 1, request_id="r1"))
    assert sim.state.phase == ExecutionPhase.SUCCEEDED

    assert sim.send(cmd.Signal("go", 1, request_id="r1")) == Reply.DUPLICATE
    with pytest.raises(CommandRejected, match="has ended"):
        sim.send(cmd.Signal("go", 1, request_id="r2"))
