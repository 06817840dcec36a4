"""Pause and resume: the part of `decide` that holds an execution's new work (issue 19).

A mixin of the decider. A pause is a *hold* with a source (`ExecutionPaused`); while any hold is
on, the execution starts nothing new, and everything else goes on as usual:

- a step the timeline reaches (a task, a retry, a timer, an approval, a child) is recorded as
  `StepHeld` instead of being scheduled; a new item of a running forEach step is kept without a
  task; a code workflow's next workflow task is not scheduled (its code has news to see);
- tasks queued but not started when the pause comes are taken back (`CancelTask`) and held too,
  each keeping its attempt and its backoff;
- what runs finishes, and its outcome is recorded; timers fire; approvals and signals are taken;
  a cancel or the workflow's timeout still ends the execution.

When the last hold is lifted (`ExecutionResumed`), the held steps are scheduled in the order they
were held, the held items get their tasks, and a code workflow's code gets a workflow task. All of
it is folded from the history alone, so a replay or another engine sees the same held work.
"""

from __future__ import annotations

from . import actions as act
from . import commands as cmd
from . import events as ev
from .command_checks import CommandRejected
from .decider_parts import DeciderParts
from .flow import CONCURRENCY, queued_reason
from .state import StepPhase

__all__ = ["PauseDecisions"]

MAX_PAUSE_REASON = 1_024


class PauseDecisions(DeciderParts):
    @property
    def paused(self) -> bool:
        return bool(self.state.holds)

    def pause(self, command: cmd.Pause) -> None:
        state = self.state
        if state.phase.terminal:
            raise CommandRejected(f"execution {state.execution_id!r} has ended ({state.phase.value}): nothing to pause")
        if command.source in state.holds:
            self.refuse(duplicate=True)
            return
        if not state.holds:  # the first hold takes back what is queued and not started
            for name in state.queued_steps():
                token = state.steps[name].token
                assert token is not None
                self.do(act.CancelTask(token))
            task = state.workflow_task
            if task is not None and not task.started_seq:
                self.do(act.CancelTask(task.token))
        reason = command.reason[:MAX_PAUSE_REASON] or "paused"
        self.emit(ev.ExecutionPaused(command.source, reason, command.by))

    def resume(self, command: cmd.Resume) -> None:
        state = self.state
        if state.phase.terminal or command.source not in state.holds:
            self.refuse(duplicate=True)
            return
        held = list(state.held_steps.items()) if len(state.holds) == 1 else []
        held_items = (
            [
                (step, item)
                for step, fan in state.fan_outs.items()
                for item, live in sorted(fan.live.items())
                if live.held
            ]
            if len(state.holds) == 1
            else []
        )
        self.emit(ev.ExecutionResumed(command.source, command.by))
        if command.source == CONCURRENCY:
            self.do(act.AdmitFlowSlot())
        if state.holds:
            return  # another source still holds it
        for step, spot in held:
            if self.state.phase.terminal:  # a held step's schedule can end it (a bad expression)
                return
            self.schedule(step, attempt=spot.attempt, poll=spot.poll, visible_at=max(spot.visible_at_ms, self.now))
        for step, item in held_items:
            fan = state.fan_outs.get(step)
            if fan is None or self.state.phase.terminal or item not in fan.live:
                continue
            if not self.schedule_item(step, self.config(step), item, fan.live[item]):
                return
        if self.definition.is_code:
            self.code_advance()

    def wait_for_slot(self) -> None:
        """With a concurrency limit, hold the execution until the admission service gives it a slot."""
        flow = self.definition.flow_control
        key = self.state.flow_key
        if flow is None or flow.concurrency is None or key is None:
            return
        if CONCURRENCY not in self.state.holds:
            self.pause(cmd.Pause(queued_reason(key, flow.concurrency), "", source=CONCURRENCY))
        self.do(act.WaitForFlowSlot(key, self.state.priority, flow.concurrency))

    def free_slot(self) -> None:
        """The execution ended: its slot (or its place in line) goes to the next of its key."""
        flow = self.definition.flow_control
        if flow is not None and flow.concurrency is not None and self.state.flow_key is not None:
            self.do(act.FreeFlowSlot())

    def hold_step(self, step: str, *, attempt: int, poll: int, visible_at: int) -> None:
        """The timeline reached ``step`` while paused: remember it, to schedule when resumed."""
        previous = self.state.steps.get(step)
        if previous is not None and previous.phase == StepPhase.HELD and step in self.state.held_steps:
            return
        self.emit(ev.StepHeld(step, attempt, poll, visible_at))
