"""A tiny in-memory driver for `decide`, used only by the engine's unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cerebelum_operator.engine import ExecutionState, Reply, decide, fold
from cerebelum_operator.engine import actions as act
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.decide import DEFAULT_MAX_TASK_BYTES, Decision
from cerebelum_operator.engine.events import RecordedEvent
from cerebelum_operator.engine.ids import TaskToken
from cerebelum_operator.model import WorkflowDefinition, compile_workflow


@dataclass
class Simulator:
    definition: WorkflowDefinition
    state: ExecutionState
    now_ms: int = 1_000_000
    history: list[RecordedEvent] = field(default_factory=list)
    tasks: dict[str, act.ScheduleTask] = field(default_factory=dict)
    leased: set[str] = field(default_factory=set)
    leases: list[act.LeaseTask] = field(default_factory=list)  # every lease granted, in order
    cancelled: set[str] = field(default_factory=set)
    timers: dict[str, int] = field(default_factory=dict)
    dead_letters: set[str] = field(default_factory=set)
    max_task_bytes: int = DEFAULT_MAX_TASK_BYTES
    messages: list[act.SendMessage] = field(default_factory=list)  # the outbox, every message in order
    last_decision: Decision | None = None

    @classmethod
    def start(
        cls, spec: dict[str, Any], input: Any = None, *, max_task_bytes: int = DEFAULT_MAX_TASK_BYTES
    ) -> Simulator:
        sim = cls(compile_workflow(spec), ExecutionState(execution_id="ex1"), max_task_bytes=max_task_bytes)
        sim.send(cmd.Start("wf", input))
        return sim

    def send(self, command: cmd.Command) -> Reply:
        decision = decide(self.definition, self.state, command, now_ms=self.now_ms, max_task_bytes=self.max_task_bytes)
        assert decision.state is not None
        self.last_decision = decision
        self.state = decision.state
        self.history.extend(decision.events)
        for action in decision.actions:
            match action:
                case act.ScheduleTask():
                    self.tasks[action.token] = action
                case act.LeaseTask():
                    self.leased.add(action.token)
                    self.leases.append(action)
                case act.DeleteTask():
                    self.tasks.pop(action.token, None)
                    self.leased.discard(action.token)
                case act.CancelTask():
                    self.cancelled.add(action.token)
                    self.tasks.pop(action.token, None)
                case act.StartTimer():
                    self.timers[action.timer_id] = action.fire_at_ms
                case act.CancelTimer():
                    self.timers.pop(action.timer_id, None)
                case act.AddDeadLetter():
                    self.dead_letters.add(action.dead_letter_id)
                case act.ResolveDeadLetter():
                    self.dead_letters.discard(action.dead_letter_id)
                case act.SendMessage():
                    self.messages.append(action)
        return decision.reply

    def started_children(self) -> list[act.SendMessage]:
        """The start messages of children (not of a next run), in order."""
        return [
            m for m in self.messages if m.kind == "start" and "parentStep" in m.body and "continuedFrom" not in m.body
        ]

    def finish_children(self, phase: str = "Succeeded", output: Any = None, error: str | None = None) -> None:
        """Tell the execution that every child it is waiting for ended so."""
        live = [self.state.children[i].child_id for i in self.state.live_children.values()]
        for child in live:
            self.send(cmd.ChildFinished(child, phase, output, error))

    def task(self, step: str) -> act.ScheduleTask:
        # By the workflow's step, which the token names (`t.step` is the function a worker runs).
        matching = [t for t in self.tasks.values() if TaskToken.parse(t.token).step == step]
        assert len(matching) == 1, f"expected one task for {step}, have {list(self.tasks)}"
        return matching[0]

    def run(self, step: str, outcome: cmd.Outcome | None = None, *, worker: str = "w1") -> Reply:
        """Start the step's task and complete it (success with output {step: True} by default)."""
        task = self.task(step)
        self.now_ms = max(self.now_ms, task.visible_at_ms)
        self.send(cmd.TaskStarted(task.token, worker))
        return self.send(cmd.TaskCompleted(task.token, outcome or cmd.OutcomeSuccess({step: True}), worker_id=worker))

    def fire_timers(self) -> None:
        for timer_id, at in sorted(self.timers.items(), key=lambda kv: kv[1]):
            self.now_ms = max(self.now_ms, at)
            self.send(cmd.TimerFired(timer_id))

    def kinds(self) -> list[str]:
        return [r.event.kind for r in self.history]

    def replayed(self) -> ExecutionState:
        return fold(self.definition, self.state.execution_id, self.history)
