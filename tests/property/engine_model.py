"""A harness around the pure `decide` that checks the engine's invariants on every decision.

It plays the runtime's part (the task, timer and dead-letter tables, a fake clock) and keeps its
own account of the timeline from the events alone, so the checks do not trust the state the
engine folds for itself.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

from cerebelum_operator.engine import CommandRejected, Decision, ExecutionState, Reply, decide, fold
from cerebelum_operator.engine import actions as act
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine import events as ev
from cerebelum_operator.engine.ids import TaskToken
from cerebelum_operator.model import InputInvalid, WorkflowDefinition

INT64_MAX = 2**63 - 1
INSTANT_FIELDS = ("at_ms", "visible_at_ms", "wake_at_ms", "timeout_at_ms", "retry_at_ms", "fire_at_ms")


class InvariantBroken(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantBroken(message)


@dataclass
class Timeline:
    """What the events say about progress: the current position, what settled in it, attempts."""

    definition: WorkflowDefinition
    position: int = -1
    settled: set[str] = field(default_factory=set)
    sleeping: set[str] = field(default_factory=set)
    attempts: dict[str, int] = field(default_factory=dict)  # highest attempt of the current round
    landed: int | None = None  # position a jump just moved to
    terminal: bool = False
    jumps: dict[str, int] = field(default_factory=dict)  # JumpTaken per rule
    ending: list[str] | None = None  # the handlers of an ExecutionEnding, until the end
    handled: list[str] = field(default_factory=list)  # handlers completed in this ending
    failed_handlers: set[str] = field(default_factory=set)  # handlers that failed for good
    items_done: dict[str, set[int]] = field(default_factory=dict)  # forEach items settled, this round
    item_attempts: dict[tuple[str, int], int] = field(default_factory=dict)
    item_counts: dict[str, int] = field(default_factory=dict)  # the list's length, this run

    def bound(self, rule: str) -> int | None:
        """The maxIterations of the branch or diverge rule keyed ``rule``."""
        bounds = {r.key: r.max_iterations for group in self.definition.branch.values() for r in group}
        bounds |= {r.key: r.max_iterations for group in self.definition.diverge.values() for r in group}
        check(rule in bounds, f"an event names rule {rule}, which the workflow does not have")
        return bounds[rule]

    def members(self, position: int) -> tuple[str, ...]:
        return self.definition.positions[position] if position >= 0 else ()

    def position_done(self) -> bool:
        return all(m in self.settled for m in self.members(self.position)) and not self.sleeping

    def enter(self, step: str, what: str) -> None:
        """A step is being run: its dependencies must have completed in this run."""
        target = self.definition.position_of(step)
        if target == self.position:
            self.settled.discard(step)
            return
        if self.landed == target:
            pass  # a goto moved here; the jump itself was checked
        else:
            check(
                target == self.position + 1,
                f"{what} {step!r} at position {target} while the timeline is at position {self.position}",
            )
            check(
                self.position_done(),
                f"{what} {step!r} before position {self.position} completed "
                f"(settled {sorted(self.settled)}, sleeping {sorted(self.sleeping)})",
            )
        self.position = target
        self.settled = set()
        self.landed = None
        for name in self.members(target):
            self.attempts.pop(name, None)

    def attempt(self, step: str, attempt: int) -> None:
        limit = self.definition.steps[step].retry.max_attempts
        previous = self.attempts.get(step, 0)
        check(
            attempt in (previous, previous + 1),
            f"step {step!r} jumped from attempt {previous} to {attempt}",
        )
        check(attempt <= limit, f"step {step!r} ran attempt {attempt}, over retry.maxAttempts={limit}")
        self.attempts[step] = attempt

    def handler(self, event: ev.Event) -> bool:
        """Check an event of a compensation or finally step; False for any other event."""
        step = getattr(event, "step", None)
        if step is None or step not in self.definition.steps or not self.definition.steps[step].handler:
            check(
                self.ending is None
                or isinstance(event, ev.ExecutionSucceeded | ev.ExecutionFailed | ev.ExecutionCancelled),
                f"{event.kind} of the timeline while the execution ends",
            )
            return False
        check(self.ending is not None and step in self.ending, f"{event.kind} of handler {step!r} outside its ending")
        if isinstance(event, ev.StepScheduled):
            assert self.ending is not None
            done = self.ending[: self.ending.index(step)]
            check(all(name in self.handled or name in self.failed_handlers for name in done), f"{step!r} out of order")
            self.attempt(step, event.attempt)
        if isinstance(event, ev.StepCompleted | ev.ApprovalGranted):  # a handler may ask for an approval
            check(step not in self.handled, f"handler {step!r} completed twice in one ending")
            self.handled.append(step)
        if isinstance(event, ev.StepFailed) and event.retry_at_ms is None:
            self.failed_handlers.add(step)
        return True

    def apply(self, event: ev.Event) -> None:
        check(not self.terminal or isinstance(event, ev.DeadLetterRedriven), f"{event.kind} after the end")
        if isinstance(event, ev.ExecutionEnding):
            check(self.ending is None, "a second ExecutionEnding before the end")
            check(len(set(event.handlers)) == len(event.handlers), f"a handler twice in {event.handlers}")
            self.ending, self.handled, self.failed_handlers = list(event.handlers), [], set()
            for name in event.handlers:
                self.attempts.pop(name, None)
            self.sleeping.clear()
            return
        if self.handler(event):
            return
        if isinstance(event, ev.ExecutionSucceeded | ev.ExecutionFailed | ev.ExecutionCancelled) and self.ending:
            complete = all(n in self.handled or n in self.failed_handlers for n in self.ending)
            check(complete or isinstance(event, ev.ExecutionCancelled), f"{event.kind} before its handlers ran")
            self.ending = None
            self.terminal = True
            self.sleeping.clear()
            return
        match event:
            case ev.ForEachStarted():
                self.enter(event.step, "fanned out")
                self.attempt(event.step, self.attempts.get(event.step, 0) + 1)
                self.items_done[event.step] = set()
                self.item_counts[event.step] = len(event.items)
                for key in [k for k in self.item_attempts if k[0] == event.step]:
                    del self.item_attempts[key]
            case ev.ItemCompleted() | ev.ItemFailed():
                step, item = event.step, event.item
                check(step in self.items_done and step not in self.settled, f"item {item} of {step!r} outside its run")
                check(item not in self.items_done[step], f"item {item} of {step!r} settled twice in one run")
                limit = self.definition.steps[step].retry.max_attempts
                previous = self.item_attempts.get((step, item), 0)
                check(event.attempt in (previous, previous + 1), f"item {item} of {step!r} skipped an attempt")
                check(event.attempt <= limit, f"item {item} of {step!r} ran attempt {event.attempt} over {limit}")
                self.item_attempts[(step, item)] = event.attempt
                if not isinstance(event, ev.ItemFailed) or event.retry_at_ms is None:
                    self.items_done[step].add(item)
            case ev.StepScheduled():
                self.enter(event.step, "scheduled")
                self.attempt(event.step, event.attempt)
                waits = self.definition.steps[event.step].depends_on
                check(all(d in self.settled for d in waits), f"{event.step!r} ran before what it depends on, {waits}")
            case ev.ApprovalRequested() if event.token is None:
                self.enter(event.step, "asked approval for")
                self.attempt(event.step, self.attempts.get(event.step, 0) + 1)
            case ev.VariablesSet():  # right after the step's accepted result
                check(event.step in self.settled, f"variables set by {event.step!r}, which has not settled")
            case ev.StepSkipped():  # its `when` was false as it was reached
                self.enter(event.step, "skipped")
                self.settled.add(event.step)
            case ev.StepCompleted():
                if event.collected:
                    done = self.items_done.pop(event.step, set())
                    count = self.item_counts.get(event.step, -1)
                    check(done == set(range(count)), f"{event.step!r} collected {sorted(done)} of {count} items")
                self.settled.add(event.step)
            case ev.StepFailed() if event.continued:
                self.settled.add(event.step)
            case ev.ApprovalGranted():
                self.settled.add(event.step)
            case ev.SleepStarted() if event.timer_step:  # a timer step starts: one attempt, no task
                self.enter(event.step, "started the timer of")
                self.attempt(event.step, self.attempts.get(event.step, 0) + 1)
                self.sleeping.add(event.step)
            case ev.SleepStarted():
                self.sleeping.add(event.step)
            case ev.SleepEnded():
                self.sleeping.discard(event.step)
            case ev.JumpLimitReached():
                # A loop cut at its bound says so, and only then: its rule jumped exactly `bound` times.
                assert event.rule is not None
                check(self.bound(event.rule) == event.bound, f"{event.rule} refused with bound {event.bound}")
                check(self.jumps.get(event.rule, 0) == event.bound, f"{event.rule} refused before its bound")
                origin = self.definition.position_of(event.step)
                check(self.definition.position_of(event.target) <= origin, f"{event.rule}: a forward goto refused")
                check(origin == self.position, f"{event.rule} refused from {origin}, not the current {self.position}")
            case ev.JumpTaken():
                self.jumps[event.rule] = self.jumps.get(event.rule, 0) + 1
                bound = self.bound(event.rule)
                origin, target = (self.definition.position_of(s) for s in (event.from_step, event.to_step))
                check(
                    bound is None or target > origin or self.jumps[event.rule] <= bound,
                    f"{event.rule} jumped past its bound {bound}",
                )
                check(self.position_done(), f"jump {event.rule} before position {self.position} completed")
                origin = self.definition.position_of(event.from_step)
                target = self.definition.position_of(event.to_step)
                check(origin == self.position, f"jump {event.rule} from {origin}, not the current {self.position}")
                for index in range(min(origin, target), max(origin, target) + 1):
                    for name in self.members(index):
                        self.attempts.pop(name, None)
                self.position, self.landed, self.settled = target, target, set()
            case ev.DeadLetterRedriven():
                self.terminal = False
                self.settled.discard(event.step)  # it runs again, whatever its last result
                for name in self.members(self.position):
                    if name not in self.settled:
                        self.attempts.pop(name, None)
            case ev.ExecutionSucceeded() if event.rule is not None:  # then: succeed, from where it stands
                self.bound(event.rule)  # a rule of the workflow
                self.sleeping.clear()
                self.terminal = True
            case ev.ExecutionSucceeded():
                check(self.position == len(self.definition.positions) - 1, "succeeded before the last position")
                check(self.position_done(), "succeeded before the last position completed")
                self.terminal = True
            case ev.ExecutionFailed() | ev.ExecutionCancelled():
                # Pending sleeps are abandoned with their timers; a redrive does not restore them.
                self.sleeping.clear()
                self.terminal = True


@dataclass
class Harness:
    """The runtime's part, played in memory: decide, persist, check."""

    definition: WorkflowDefinition
    state: ExecutionState
    now_ms: int = 1_700_000_000_000
    history: list[ev.RecordedEvent] = field(default_factory=list)
    tasks: dict[str, act.ScheduleTask] = field(default_factory=dict)
    leased: dict[str, str] = field(default_factory=dict)
    timers: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, bool] = field(default_factory=dict)  # id -> still open
    tokens: set[str] = field(default_factory=set)
    timer_ids: set[str] = field(default_factory=set)
    sent: list[cmd.Command] = field(default_factory=list)
    timeline: Timeline | None = None

    def __post_init__(self) -> None:
        self.timeline = Timeline(self.definition)

    def send(self, command: cmd.Command) -> Decision | None:
        """Decide one command; None when the engine refused it (its documented way to say no)."""
        before = copy.deepcopy(self.state)
        was_terminal = self.state.phase.terminal
        try:
            decision = decide(self.definition, self.state, command, now_ms=self.now_ms)
        except CommandRejected:
            check(self.state == before, "a rejected command changed the state it was given")
            self.sent.append(command)
            return None
        except InputInvalid:
            check(isinstance(command, cmd.Start), "InputInvalid from a command other than Start")
            check(self.state == before, "a refused start changed the state it was given")
            return None
        check(self.state == before, f"decide changed the state it was given on {type(command).__name__}")
        self.sent.append(command)
        self.check_decision(command, decision, was_terminal)
        assert decision.state is not None
        self.state = decision.state
        self.history.extend(decision.events)
        self.apply_actions(decision.actions)
        return decision

    def check_decision(self, command: cmd.Command, decision: Decision, was_terminal: bool) -> None:
        assert decision.state is not None
        expected = self.state.last_seq + 1
        for recorded in decision.events:
            check(recorded.seq == expected, f"event seq {recorded.seq}, expected {expected}")
            check(recorded.at_ms == self.now_ms, "an event stamped with another time than now")
            expected += 1
            self.check_storable(recorded.event)
        check(decision.state.last_seq == expected - 1, "state.last_seq is not the last event's seq")
        if decision.reply != Reply.ACCEPTED:
            check(not decision.events, f"a {decision.reply} reply recorded events")
        if was_terminal and not isinstance(command, cmd.Redrive):
            check(not decision.events, f"{type(command).__name__} recorded events on a finished execution")
            check(not decision.actions, f"{type(command).__name__} asked for actions on a finished execution")
            check(decision.reply in (Reply.DUPLICATE, Reply.STALE), f"{decision.reply} on a finished execution")
        scheduled = {r.event.token for r in decision.events if isinstance(r.event, ev.StepScheduled)}
        tasks = {a.token for a in decision.actions if isinstance(a, act.ScheduleTask)}
        items = {token for token in tasks if TaskToken.parse(token).item is not None}
        check(scheduled == tasks - items, f"StepScheduled events {scheduled} but ScheduleTask actions {tasks}")
        stopped = {a.token for a in decision.actions if isinstance(a, act.CancelTask | act.DeleteTask)}
        for token in items:  # an item's task: in flight as the fold says, unless the decision stopped it
            parsed = TaskToken.parse(token)
            fan = decision.state.fan_outs.get(parsed.step)
            live = None if fan is None or parsed.item is None else fan.live.get(parsed.item)
            check(
                (live is not None and live.token == token) or token in stopped,
                f"item task {token!r} not in flight in the state",
            )
        for token in scheduled | items:
            check(token not in self.tokens, f"task token {token!r} used twice")
            self.tokens.add(token)
        for action in decision.actions:
            for name in INSTANT_FIELDS:
                value = getattr(action, name, None)
                check(value is None or 0 <= value <= INT64_MAX, f"{action} has {name}={value}")
        assert self.timeline is not None
        for recorded in decision.events:
            self.timeline.apply(recorded.event)

    def check_storable(self, event: ev.Event) -> None:
        """The store writes an event's data as JSON and reads it back: that must give the same event."""
        data = event.to_data()
        try:
            text = json.dumps(data, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvariantBroken(f"{event.kind} cannot be stored as JSON: {exc}") from None
        check(ev.event_from_record(event.kind, json.loads(text)) == event, f"{event.kind} changes through JSON")
        for name in INSTANT_FIELDS:
            value = data.get(name)
            check(value is None or 0 <= value <= INT64_MAX, f"{event.kind}.{name}={value} does not fit the store")

    def apply_actions(self, actions: list[act.Action]) -> None:
        for action in actions:
            match action:
                case act.ScheduleTask():
                    self.tasks[action.token] = action
                case act.LeaseTask():
                    self.leased[action.token] = action.worker_id
                case act.DeleteTask() | act.CancelTask():
                    self.tasks.pop(action.token, None)
                    self.leased.pop(action.token, None)
                case act.StartTimer():
                    check(action.timer_id not in self.timer_ids, f"timer id {action.timer_id!r} used twice")
                    self.timer_ids.add(action.timer_id)
                    self.timers[action.timer_id] = action.fire_at_ms
                case act.CancelTimer():
                    self.timers.pop(action.timer_id, None)
                case act.AddDeadLetter():
                    check(
                        action.dead_letter_id not in self.dead_letters, f"dead letter {action.dead_letter_id!r} twice"
                    )
                    self.dead_letters[action.dead_letter_id] = True
                case act.ResolveDeadLetter():
                    self.dead_letters[action.dead_letter_id] = False

    def check_state(self) -> None:
        """Invariants between decisions: replay, and a running execution always waits on something."""
        check(fold(self.definition, self.state.execution_id, self.history) == self.state, "replay differs")
        if self.state.started and not self.state.phase.terminal:
            waiting = self.tasks or self.timers or self.state.approvals
            check(bool(waiting), f"execution {self.state.phase} waits on nothing: stuck forever")
        if self.state.phase.terminal:
            check(not self.tasks, f"finished with live tasks {sorted(self.tasks)}")
            check(not self.timers, f"finished with live timers {sorted(self.timers)}")

    # -- helpers for drivers ---------------------------------------------------------------

    def start_task(self, token: str, worker: str) -> Decision | None:
        task = self.tasks.get(token)
        if task is not None:
            self.now_ms = max(self.now_ms, task.visible_at_ms)
        return self.send(cmd.TaskStarted(token, worker))

    def fire(self, timer_id: str) -> Decision | None:
        self.now_ms = max(self.now_ms, self.timers.get(timer_id, self.now_ms))
        return self.send(cmd.TimerFired(timer_id))
