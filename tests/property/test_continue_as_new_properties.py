"""Properties of continue-as-new chains (issue 17), on the pure engine core.

Whatever the order of signals sent to a chain and of its steps' work, each run's input follows the
one before, every signal is taken once and in the order sent across the whole chain (what a run did
not take goes to the next run, in order, as the relay hands it on), nothing is lost when the chain
ends, and each run's history replays to its state.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cerebelum_operator.engine import ExecutionPhase, ExecutionState
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model import compile_workflow
from tests.unit.engine.simulator import Simulator


def chain_spec(runs: int) -> dict[str, Any]:
    return {
        "input": {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]},
        "timeline": ["work", "wait", "again"],
        "steps": {
            "wait": {"signal": {"name": "tick"}},
            "again": {"continueAsNew": {"input": "{'count': input.count + 1}"}},
        },
        "branch": {"wait": [{"when": f"input.count >= {runs - 1}", "then": "succeed"}]},
    }


def next_run(previous: Simulator) -> Simulator:
    """What the relay does with the finished run's start message: the next run, its signals carried."""
    [start] = [m for m in previous.messages if m.kind == "start" and "continuedFrom" in m.body]
    body = start.body
    sim = Simulator(previous.definition, ExecutionState(execution_id=start.target))
    sim.send(
        cmd.Start(
            body["workflow"],
            body["input"],
            continued_from=body["continuedFrom"],
            first_run_id=body["firstRunId"],
            run=body["run"],
            carried_request_ids=tuple(body["requestIds"]),
        )
    )
    for signal in body["signals"]:
        sim.send(cmd.Signal(signal["name"], signal["data"], signal["sender"]))
    return sim


@given(st.integers(min_value=1, max_value=4), st.lists(st.sampled_from(["send", "work"]), max_size=40))
def test_a_chain_takes_every_signal_once_in_order_and_hands_on_what_a_run_left(runs: int, script: list[str]) -> None:
    spec = chain_spec(runs)
    chain = [Simulator(compile_workflow(spec), ExecutionState(execution_id="c"))]
    chain[0].send(cmd.Start("wf", {"count": 0}))
    sent: list[int] = []
    for action in [*script, *["work"] * (3 * runs)]:  # then work enough for every run to reach its wait
        current = chain[-1]
        if current.state.phase == ExecutionPhase.SUCCEEDED:
            break
        if action == "send":
            current.send(cmd.Signal("tick", len(sent)))
            sent.append(len(sent))
        elif current.tasks:
            current.run(next(iter(current.tasks.values())).step)
        if current.state.phase == ExecutionPhase.CONTINUED_AS_NEW:
            chain.append(next_run(current))

    taken = [run.state.results["wait"]["data"] for run in chain if "wait" in run.state.results]
    left = [s.data for s in chain[-1].state.signals]
    assert taken + left == sent, "each signal once, in the order sent, none lost across the runs"
    assert [run.state.input["count"] for run in chain] == list(range(len(chain)))
    assert all(run.state.phase == ExecutionPhase.CONTINUED_AS_NEW for run in chain[:-1])
    if len(sent) >= runs:  # a signal for every run's wait: the chain ran to its end
        assert len(chain) == runs and chain[-1].state.phase == ExecutionPhase.SUCCEEDED
    for run in chain:
        assert run.replayed() == run.state
