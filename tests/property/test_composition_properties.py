"""Properties of signals and children over many interleavings (issue 17), on the pure engine core.

- Signals: whatever the order of sends and of steps reaching their waits, each signal is taken
  once, by one step, and the signals of one name are taken in the order they were sent; what no
  step took is still queued, in order; a replay of the history rebuilds the same state.
- Children: whatever the order in which the outbox's messages are delivered (each target's in
  the order sent, as the relay does; targets interleaved at random) and wherever the parent is
  cancelled, once the outbox is drained no child of the parent is left running, unless its step
  abandons it.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cerebelum_operator.engine import CommandRejected, ExecutionPhase, ExecutionState
from cerebelum_operator.engine import actions as act
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.model import compile_workflow
from tests.unit.engine.simulator import Simulator

NAMES = ("a", "b")


@st.composite
def signal_scenarios(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, Any]]]:
    """Wait steps (each a signal name, with a worker step between some), and a script of events."""
    waits = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6))
    script = draw(
        st.lists(
            st.one_of(st.tuples(st.just("send"), st.sampled_from(NAMES)), st.tuples(st.just("work"), st.none())),
            max_size=20,
        )
    )
    return waits, script


@given(signal_scenarios())
def test_every_signal_is_taken_once_in_the_order_of_its_name(scenario: tuple[list[str], list[tuple[str, Any]]]) -> None:
    waits, script = scenario
    timeline: list[str] = []
    steps: dict[str, Any] = {}
    for index, name in enumerate(waits):
        timeline += [f"work{index}", f"wait{index}"]
        steps[f"wait{index}"] = {"signal": {"name": name}}
    sim = Simulator.start({"timeline": timeline, "steps": steps})
    sent: dict[str, list[int]] = {name: [] for name in NAMES}
    counter = 0
    for kind, name in script:
        if sim.state.phase.terminal:
            break
        if kind == "send":
            try:
                sim.send(cmd.Signal(name, counter))
            except CommandRejected:
                assert name not in waits  # refused only for a name no step waits for
                continue
            sent[name].append(counter)
            counter += 1
        elif sim.tasks:
            sim.run(next(iter(sim.tasks.values())).step)

    taken: dict[str, list[int]] = {name: [] for name in NAMES}
    for index, name in enumerate(waits):
        result = sim.state.results.get(f"wait{index}")
        if result is not None:
            taken[name].append(result["data"])
    queued = {name: [s.data for s in sim.state.signals if s.name == name] for name in NAMES}
    for name in NAMES:
        assert taken[name] + queued[name] == sent[name]  # each once, in order, none lost
    assert sim.replayed() == sim.state


class World:
    """A parent and its children as simulators, and the outbox between them."""

    def __init__(self, spec: dict[str, Any], child_spec: dict[str, Any]) -> None:
        self.parent = Simulator.start(spec)
        self.child_definition = compile_workflow(child_spec)
        self.children: dict[str, Simulator] = {}
        self.done: set[int] = set()  # the messages delivered, by identity

    def pending(self) -> list[act.SendMessage]:
        messages = self.parent.messages + [m for child in self.children.values() for m in child.messages]
        return [m for m in messages if id(m) not in self.done]

    def heads(self) -> list[act.SendMessage]:
        """Each target's oldest undelivered message: what the relay may deliver next."""
        heads: dict[str, act.SendMessage] = {}
        for message in self.pending():
            heads.setdefault(message.target, message)
        return list(heads.values())

    def deliver(self, message: act.SendMessage) -> None:
        self.done.add(id(message))
        body = message.body
        if message.kind == "start":
            child = Simulator(self.child_definition, ExecutionState(execution_id=message.target))
            child.send(cmd.Start("child", body["input"], parent_id=body["parentId"], parent_step=body["parentStep"]))
            self.children[message.target] = child
            return
        target = self.parent if message.target == self.parent.state.execution_id else self.children.get(message.target)
        if target is None:
            return  # a cancel for a child that never started: nothing runs
        if body["command"] == "cancel":
            target.send(cmd.Cancel(body["reason"]))
        else:
            target.send(cmd.ChildFinished(body["childId"], body["phase"], body["output"], body["error"]))


@given(
    st.lists(st.sampled_from(["cancel", "abandon"]), min_size=1, max_size=3),
    st.lists(st.integers(min_value=0, max_value=10), max_size=30),
    st.integers(min_value=0, max_value=20),
)
def test_a_cancelled_parent_leaves_no_child_running_unless_its_step_abandons_it(
    policies: list[str], choices: list[int], cancel_at: int
) -> None:
    steps = {f"kid{i}": {"child": {"workflow": "c", "onParentCancel": p}} for i, p in enumerate(policies)}
    world = World(
        {"timeline": [list(steps)], "steps": steps}, {"timeline": ["w"], "steps": {"w": {"signal": {"name": "go"}}}}
    )
    moves = [*choices, *([0] * 50)]
    for turn, choice in enumerate(moves):
        if turn == cancel_at and not world.parent.state.phase.terminal:
            world.parent.send(cmd.Cancel("stop"))
        heads = world.heads()
        if not heads:
            if turn >= cancel_at:
                break
            running = [c for c in world.children.values() if not c.state.phase.terminal]
            if running and choice % 2:  # a child finishes on its own
                running[choice % len(running)].send(cmd.Signal("go", choice))
            continue
        world.deliver(heads[choice % len(heads)])
    if not world.parent.state.phase.terminal:
        world.parent.send(cmd.Cancel("stop"))
    while heads := world.heads():
        world.deliver(heads[0])

    assert world.parent.state.phase in (ExecutionPhase.CANCELLED, ExecutionPhase.SUCCEEDED)
    for child_id, child in world.children.items():
        link = next(link for link in world.parent.state.children if link.child_id == child_id)
        if not link.abandon:
            assert child.state.phase.terminal, f"{child_id} was orphaned"
