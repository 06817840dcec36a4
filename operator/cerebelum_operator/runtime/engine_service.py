"""The engine as a service: load state, decide, persist, then tell the dispatcher and timers.

State is cached per execution and rebuilt from the store whenever it may be stale
(a conflict, a restart), so the store stays the only source of truth.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..engine import (
    DEFAULT_MAX_HISTORY_EVENTS,
    CommandRejected,
    Decision,
    ExecutionPhase,
    ExecutionState,
    Reply,
    decide,
    fold,
)
from ..engine import commands as cmd
from ..engine.actions import Action
from ..engine.events import RecordedEvent
from ..engine.fan_out import item_of
from ..engine.timer_steps import rfc3339
from ..model import WorkflowDefinition, WorkflowInvalid, check_labels, compile_workflow
from ..model.limits import DEFAULT_MAX_PAYLOAD_BYTES, json_size, task_budget
from ..model.shards import shard_of
from ..store import (
    AppendRequest,
    ConcurrencyConflict,
    DeadLetterRow,
    ExecutionExists,
    ExecutionPage,
    ExecutionQuery,
    ExecutionRetired,
    ExecutionRow,
    ExecutionSummary,
    NewExecution,
    PageCursor,
    ShardOwnerRow,
    WorkflowPauseRow,
    WorkflowRow,
)
from .clock import Clock
from .database import Database

__all__ = [
    "ActionListener",
    "Authorize",
    "ChangeListener",
    "EagerDispatch",
    "EngineService",
    "ExecutionNotFound",
    "HistoryListener",
    "LiveStep",
    "TaskView",
    "WorkflowNotFound",
]

T = TypeVar("T")
log = logging.getLogger(__name__)

ActionListener = Callable[[str, str, list[Action]], Awaitable[None] | None]
ChangeListener = Callable[[str, ExecutionState], None]
# Told (execution_id, the events one decision committed, in seq order).
HistoryListener = Callable[[str, Sequence[RecordedEvent]], None]
# Raises unless the caller may send the command, judged from the engine's own record of the
# execution (its definition and state), under the execution's lock.
Authorize = Callable[[WorkflowDefinition, ExecutionState], None]


_DORMANT = frozenset({ExecutionPhase.SLEEPING, ExecutionPhase.WAITING_FOR_APPROVAL, ExecutionPhase.WAITING_FOR_SIGNAL})


class EagerDispatch(Protocol):
    """Hands a task to a worker already waiting for it, in the same commit that scheduled it."""

    def reserve(
        self, execution_id: str, workflow: str, actions: Sequence[Action], *, now_ms: int | None = None
    ) -> list[cmd.TaskStarted]:
        """Set aside a waiting poller for each task it can take now; the leases to decide.

        ``now_ms``: the time the decision read, which its leases' StepStarted record: a rate limit
        counts the start at that time, so rate-limited tasks may be leased eagerly too."""

    def release(self, commands: Sequence[cmd.TaskStarted]) -> None:
        """The commit failed or the lease was refused: the pollers wait again."""


class TaskView(Protocol):
    """What the dispatcher knows of a task now and the history does not: progress, who polls for it."""

    def progress_of(self, token: str) -> Any:
        """The latest heartbeat progress of a leased task (None without one)."""

    def waiting_hint(self, token: str) -> str | None:
        """Why a task that waits long for a worker may never get one, or None."""

    def holder_of(self, token: str) -> str | None:
        """The worker a task is leased to now, or None when it is not leased."""


@dataclass(frozen=True, slots=True)
class LiveStep:
    """A step's task as the dispatcher sees it now (`EngineService.live_steps`)."""

    progress: Any = None
    waiting_hint: str | None = None


class ExecutionNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a started execution comes from: a parent's child step, or the run it continues."""

    parent_id: str | None = None
    parent_step: str | None = None
    continued_from: str | None = None
    first_run_id: str | None = None
    run: int = 1
    carried_request_ids: tuple[str, ...] = ()


class WorkflowNotFound(LookupError):
    pass


class ExecutionConflict(Exception):
    """A start names an existing execution's id with another workflow or input: it is not started again.

    Returning the existing one, as for a retried start, would tell the caller its input ran when it did not.
    """


def _existing(row: ExecutionRow, workflow: str, input: Any, filled: Any) -> ExecutionRow:
    """The execution a start found under its id, if that start asked for the same thing.

    ``filled`` is ``input`` with the defaults of the execution's own input schema: what it
    recorded, unless it started before defaults were filled (then ``input`` itself).
    """
    if row.workflow != workflow:
        raise ExecutionConflict(
            f"execution {row.execution_id!r} already exists, of workflow {row.workflow!r}, not {workflow!r};"
            " it was not started again: choose another id"
        )
    if row.input != filled and row.input != input:
        raise ExecutionConflict(
            f"execution {row.execution_id!r} already exists with a different input; it was not started again:"
            " choose another id"
        )
    return row


# A code workflow's latest events, kept with its cached state: its workflow tasks carry the events
# since the last one, which a worker holding the execution asks for on every decision.
RECENT_EVENTS = 128
# The workflows an engine that is not split keeps in memory, by the bytes of their specs as JSON, least
# recently used forgotten first (a spec may weigh up to the payload limit, and anyone may apply many).
MAX_KEPT_WORKFLOW_BYTES = 32 * 1024 * 1024


def _held_by(pause: WorkflowPauseRow | None) -> tuple[cmd.Pause, ...]:
    return () if pause is None else (cmd.Pause(pause.reason, pause.by, source="workflow"),)


@dataclass
class _Cached:
    definition: WorkflowDefinition
    state: ExecutionState
    workflow: str
    recent: deque[RecordedEvent] | None = None  # a code workflow's last RECENT_EVENTS events

    def keep(self, events: Sequence[RecordedEvent]) -> None:
        if self.definition.is_code:
            if self.recent is None:
                self.recent = deque(maxlen=RECENT_EVENTS)
            self.recent.extend(events)


class EngineService:
    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        cache_size: int = 10_000,
        max_history_events: int = DEFAULT_MAX_HISTORY_EVENTS,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.db = db
        self.clock = clock
        self.max_history_events = max_history_events
        self.max_task_bytes = task_budget(max_payload_bytes)
        self.max_payload_bytes = max_payload_bytes
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_size = cache_size
        self._locks: dict[str, asyncio.Lock] = {}
        self._definitions: dict[str, WorkflowDefinition] = {}
        self._definitions_by_source: dict[str, WorkflowDefinition] = {}
        self._listeners: list[ActionListener] = []
        self._workflow_pause: Callable[[str], WorkflowPauseRow | None] = lambda workflow: None
        self._change_listeners: list[ChangeListener] = []
        self._history_listeners: list[HistoryListener] = []
        self._progress_listeners: list[Callable[[str], None]] = []
        self._terminal_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._eager: EagerDispatch | None = None
        self._finishing: set[asyncio.Future[Any]] = set()  # decisions whose callers went away
        self._task_view: TaskView | None = None
        self._placement: Callable[[str], int] | None = None
        self._owns: Callable[[int], bool] | None = None
        # Not split, this engine is the store's one writer of workflows (`put_workflow`): each start
        # reads its workflow from here, not the store, where the read queued behind a group commit.
        self._workflow_rows: OrderedDict[str, tuple[WorkflowRow, int]] = OrderedDict()  # with its spec's bytes
        self._kept_workflow_bytes = 0

    def set_eager_dispatch(self, eager: EagerDispatch) -> None:
        """Lease new tasks to waiting workers within the decision that scheduled them.

        One commit instead of two per step: the step-to-step path is the completion's
        commit, not that plus a second one for the lease.
        """
        self._eager = eager

    def set_workflow_pauses(self, pause_of: Callable[[str], WorkflowPauseRow | None]) -> None:
        """Where a start learns whether its workflow is paused (runtime/flow_control.py): then it
        starts held, in the same decision, so nothing of it is dispatched before the pause is lifted."""
        self._workflow_pause = pause_of

    def set_ownership(self, owns: Callable[[int], bool] | None) -> None:
        """Which shards this engine owns now (scale-out); None: every shard."""
        self._owns = owns

    @property
    def split(self) -> bool:
        """Whether this engine owns only some shards (scale-out), sharing its store with others."""
        return self._owns is not None

    def owns_id(self, execution_id: str) -> bool:
        """Whether this engine owns the shard of `execution_id`'s own id (a root's, pinned there)."""
        return self._owns is None or self._owns(shard_of(execution_id, shards=self.shard_count()))

    async def owns_execution(self, execution_id: str) -> bool:
        """Whether this engine owns the execution's shard (an execution not there: yes, nothing to hand on)."""
        if self._owns is None:
            return True
        shard = await self.shard_of_execution(execution_id)
        return shard is None or self._owns(shard)

    def set_placement(self, placement: Callable[[str], int] | None) -> None:
        """Where a new root execution started here goes (scale-out: a shard this engine owns); None: by its id."""
        self._placement = placement

    def set_task_view(self, view: TaskView) -> None:
        """Where `live_steps` reads what is not in the history (the dispatcher)."""
        self._task_view = view

    def live_steps(self, state: ExecutionState) -> dict[str, LiveStep]:
        """Each in-flight step's latest heartbeat progress, or why its task may wait for a worker forever."""
        view = self._task_view
        if view is None:
            return {}
        live: dict[str, LiveStep] = {}
        for name, step in state.steps.items():
            if step.token is None or not step.in_flight:
                continue
            progress, hint = view.progress_of(step.token), view.waiting_hint(step.token)
            if progress is not None or hint is not None:
                live[name] = LiveStep(progress=progress, waiting_hint=hint)
        return live

    def add_listener(self, listener: ActionListener) -> None:
        """Called with (execution_id, workflow, actions) after every committed decision."""
        self._listeners.append(listener)

    def add_progress_listener(self, listener: Callable[[str], None]) -> None:
        """Called with the execution id when a running step's heartbeat brings new progress; must not block.

        Progress is not in the history (a heartbeat decides nothing), so the change listeners do
        not hear of it; the operator's status writer listens here to show it on the Execution.
        """
        self._progress_listeners.append(listener)

    def progress_changed(self, execution_id: str) -> None:
        """The dispatcher's word that a step of `execution_id` reported new progress."""
        for listener in self._progress_listeners:
            listener(execution_id)

    def add_change_listener(self, listener: ChangeListener) -> None:
        """Called with (execution_id, new state) after every committed decision; must not block."""
        self._change_listeners.append(listener)

    def add_history_listener(self, listener: HistoryListener) -> None:
        """Called with (execution_id, the events it committed) after every committed decision that
        recorded any, before the change listeners; must not block, must not keep the events' payloads
        (the operator's status writer keeps a few events' kinds and times, so it need not read them back)."""
        self._history_listeners.append(listener)

    def definition_for(self, spec: dict[str, Any], *, started: bool = False) -> WorkflowDefinition:
        """Compile a spec once; a spec never changes (an execution adopts another at a redrive).

        Keyed by the spec's own JSON first: compiling (CEL, JSON Schema) costs far more than
        serialising, and every start and every reload asks for the definition again.
        ``started``: the snapshot of a started execution, compiled with the checks that guard only
        new starts relaxed, so a release with stricter rules never strands it.
        """
        source = json.dumps(spec, sort_keys=True, separators=(",", ":"))
        if started:
            source = "started:" + source
        cached = self._definitions_by_source.get(source)
        if cached is None:
            definition = compile_workflow(spec, started=started)
            cached = self._definitions.setdefault(definition.spec_hash, definition)
            self._definitions_by_source[source] = cached
        return cached

    def _existing(self, row: ExecutionRow, workflow: str, input: Any) -> ExecutionRow:
        """`_existing`, with ``input`` filled by the defaults of the spec the execution started with."""
        try:
            filled = self.definition_for(row.spec, started=True).with_input_defaults(input)
        except WorkflowInvalid:  # a snapshot this release no longer compiles: compare as given
            filled = input
        return _existing(row, workflow, input, filled)

    # -- commands ------------------------------------------------------------------------

    async def redrive(self, execution_id: str, dead_letter_id: str, *, with_current_workflow: bool = False) -> None:
        """Redrive a dead letter; ``with_current_workflow``: on the execution's Workflow as it is now.

        The new spec must keep the execution's shape (the same timeline and the same steps), so its
        history folds alike under it; what may change is every setting, rule and expression.
        """
        if not with_current_workflow:
            await self.handle(execution_id, cmd.Redrive(dead_letter_id))
            return
        state = await self.state_of(execution_id)
        row = await self.get_workflow(state.workflow)
        if row is None:
            raise WorkflowNotFound(f"workflow {state.workflow!r} not found: it was deleted")
        current = self.definition_for(row.spec)

        def adopt(own: WorkflowDefinition) -> WorkflowDefinition:
            if current.positions != own.positions or set(current.steps) != set(own.steps):
                raise CommandRejected(
                    f"workflow {state.workflow!r} changed its timeline or steps since execution {execution_id!r}"
                    " started: only its settings, rules and expressions may change for a redrive to adopt it"
                )
            return current

        await self.handle(execution_id, cmd.Redrive(dead_letter_id, adopt_spec=True), adopt=adopt)

    async def start(
        self,
        workflow: str,
        input: Any,
        *,
        execution_id: str,
        origin: Origin | None = None,
        spec: dict[str, Any] | None = None,
        then: cmd.Command | None = None,
        carried: Sequence[cmd.Signal] = (),
        reset: cmd.ResetPoint | None = None,
        hold: cmd.Pause | None = None,
        labels: Mapping[str, str] | None = None,
        pinned: bool = False,
    ) -> ExecutionRow:
        """Start an execution; a second start with the same id, workflow and input returns the first one.

        The same id with another workflow or input raises `ExecutionConflict`. Runs to its end
        even if the caller is cancelled (see `_to_the_end`). ``origin``: the parent or the run
        this one continues; ``spec``: run on this spec instead of the workflow's stored one (a
        next run whose Workflow was deleted); ``then``: a command decided right after the start
        and committed with it (signal-with-start), refused whole if it is refused; ``carried``:
        the signals a previous run left queued, received after the start in the same commit (one
        the new run refuses, its name no longer awaited, is dropped and logged); ``reset``: a reset
        run, starting at its step (runtime/resets.py); ``hold``: a pause it starts with (a Kubernetes
        Execution created with its pause annotation), in its first decision; ``pinned``: a root placed
        in its id's shard even when this engine owns only some shards, refused (`ShardNotOwned`) when
        it does not own that one (a Kubernetes Execution, whose object is routed by its uid); ``labels``: what
        listings filter it by (`model.labels` syntax, else `LabelsInvalid`), stored with its row. A
        repeated start finds the first one whatever labels it gives: labels never change.
        """
        checked = check_labels(labels or {})
        row, _ = await self._to_the_end(
            self._start(
                workflow,
                input,
                execution_id=execution_id,
                origin=origin or Origin(),
                spec=spec,
                then=then,
                carried=carried,
                reset=reset,
                hold=hold,
                labels=checked,
                pinned=pinned,
            )
        )
        return row

    async def start_or_find(
        self, workflow: str, input: Any, *, execution_id: str, labels: Mapping[str, str] | None = None
    ) -> tuple[ExecutionRow, bool]:
        """A client's `start`, and whether this call created the execution: its labels are then those
        given, and the answer needs no read of them (False: the first start's are in the store)."""
        checked = check_labels(labels or {})
        return await self._to_the_end(
            self._start(workflow, input, execution_id=execution_id, origin=Origin(), labels=checked)
        )

    async def signal(self, execution_id: str, signal: cmd.Signal) -> str:
        """Deliver a signal to the latest run of the execution's chain; the id of the run it reached.

        A run that continued as new hands the signal on: it is delivered to the next run (waited
        for a moment when the relay has not started it yet), so a sender needs only the first id.
        """
        target = await self.latest_run(execution_id)
        for attempt in range(40):
            try:
                await self.handle(target, signal)
                return target
            except CommandRejected:
                if (await self.state_of(target)).phase != ExecutionPhase.CONTINUED_AS_NEW or attempt == 39:
                    raise
            following = await self.latest_run(target)
            if following == target:  # the relay starts the next run within moments
                await self.clock.sleep(0.05)
            target = following
        raise AssertionError("unreachable")

    async def signal_with_start(
        self,
        workflow: str,
        input: Any,
        *,
        execution_id: str,
        signal: cmd.Signal,
        labels: Mapping[str, str] | None = None,
    ) -> ExecutionRow:
        """Deliver a signal, starting the execution first (in the same commit) if it does not exist;
        ``labels`` are the started execution's (checked even when it exists, so a bad one always fails)."""
        checked = check_labels(labels or {})
        existing = await self.db.run(self.db.store.get_execution, execution_id)
        if existing is None:
            row, created = await self._to_the_end(
                self._start(
                    workflow,
                    input,
                    execution_id=execution_id,
                    origin=Origin(),
                    spec=None,
                    then=signal,
                    carried=(),
                    labels=checked,
                )
            )
            if created:
                return row
        await self.handle(execution_id, signal)  # it exists: started by someone else meanwhile, or before
        found = await self.db.run(self.db.store.get_execution, execution_id)
        assert found is not None
        return found

    async def latest_run(self, execution_id: str) -> str:
        """The latest run of the continue-as-new chain ``execution_id`` belongs to (itself if none)."""
        state = await self.state_of(execution_id)
        latest = await self.db.run(self.db.store.latest_run, state.chain_id)
        return latest or execution_id

    async def _start(
        self,
        workflow: str,
        input: Any,
        *,
        execution_id: str,
        origin: Origin,
        spec: dict[str, Any] | None = None,
        then: cmd.Command | None = None,
        carried: Sequence[cmd.Signal] = (),
        reset: cmd.ResetPoint | None = None,
        hold: cmd.Pause | None = None,
        labels: Mapping[str, str] | None = None,
        pinned: bool = False,
    ) -> tuple[ExecutionRow, bool]:
        """The execution, and whether this call created it (False: it existed already)."""
        row = await self.get_workflow(workflow)
        stored_spec = spec if spec is not None else (row.spec if row is not None else None)
        if stored_spec is None:
            existing = await self.db.run(self.db.store.get_execution, execution_id)
            if existing is not None:
                return self._existing(existing, workflow, input), False
            raise WorkflowNotFound(f"workflow {workflow!r} not found: apply it first")
        definition = self.definition_for(stored_spec, started=spec is not None)
        now = self.clock.now_ms()
        start = cmd.Start(
            workflow,
            input,
            parent_id=origin.parent_id,
            parent_step=origin.parent_step,
            continued_from=origin.continued_from,
            first_run_id=origin.first_run_id,
            run=origin.run,
            carried_request_ids=origin.carried_request_ids,
            reset=reset,
            pauses=_held_by(self._workflow_pause(workflow)) + ((hold,) if hold is not None else ()),
        )
        decision = decide(
            definition,
            ExecutionState(execution_id=execution_id),
            start,
            now_ms=now,
            max_history_events=self.max_history_events,
            max_task_bytes=self.max_task_bytes,
            max_input_bytes=self.max_payload_bytes,
        )
        assert decision.state is not None
        raw, input = input, decision.state.input  # with the input schema's defaults filled in
        for following_command in ([then] if then is not None else []) + list(carried):
            try:
                following = decide(
                    definition,
                    decision.state,
                    following_command,
                    now_ms=now,
                    max_history_events=self.max_history_events,
                    max_task_bytes=self.max_task_bytes,
                )
            except CommandRejected as refused:
                if following_command is then:
                    raise
                log.warning("a signal carried over to %s was dropped: %s", execution_id, refused)
                continue
            decision = Decision(
                decision.events + following.events,
                decision.actions + following.actions,
                decision.reply,
                following.state,
            )
        chain = (origin.first_run_id, origin.run) if origin.first_run_id is not None else None
        # A child goes to its parent's shard, a run to its chain's and a reset to its old run's: what
        # one tree's runs say to each other stays with one owner.
        placed_with = origin.parent_id or origin.first_run_id or (reset.from_id if reset is not None else None)
        if placed_with is not None:
            shard = await self.db.run(self.db.store.shard_of_execution, placed_with)
        else:  # a root: by its id, unless this engine owns only some shards (a schedule's start, say)
            shard = None if self._placement is None or pinned else self._placement(execution_id)
        new = NewExecution(
            workflow=workflow,
            spec=stored_spec,
            spec_hash=definition.spec_hash,
            input=input,
            chain=chain,
            labels=labels or {},
            shard=shard,
        )
        try:
            decision, reserved = self._with_eager_leases(execution_id, definition, decision, now)
            assert decision.state is not None
            summary = self._summary(decision.state, now)
            await self._commit(
                AppendRequest(execution_id, 0, decision.events, decision.actions, summary, new), reserved
            )
        except ExecutionRetired:
            raise ExecutionConflict(f"{await self.missing(execution_id)}: its id is not used again") from None
        except ExecutionExists:
            existing = await self.db.run(self.db.store.get_execution, execution_id)
            assert existing is not None
            return self._existing(existing, workflow, raw), False
        assert decision.state is not None
        self._remember_or_forget(execution_id, _Cached(definition, decision.state, workflow))
        await self._publish(execution_id, decision)
        return ExecutionRow(
            execution_id=execution_id,
            workflow=workflow,
            spec=stored_spec,
            spec_hash=definition.spec_hash,
            input=input,
            phase=summary.phase,
            current_steps=list(summary.current_steps),
            output=summary.output,
            error=summary.error,
            wake_at_ms=summary.wake_at_ms,
            created_at_ms=now,
            updated_at_ms=now,
            last_seq=decision.state.last_seq,
        ), True

    async def handle(
        self,
        execution_id: str,
        command: cmd.Command,
        *,
        authorize: Authorize | None = None,
        adopt: Callable[[WorkflowDefinition], WorkflowDefinition] | None = None,
    ) -> Decision:
        """Decide and persist one command; retried on a concurrency conflict after reloading.

        ``authorize`` runs on the loaded state inside the execution's lock, before deciding: an
        access decision made earlier, or from another component's view of the execution, could
        judge a task the engine has not scheduled yet. Runs to its end even if the caller is
        cancelled (see `_to_the_end`).
        """
        return await self._to_the_end(self._handle_serially(execution_id, command, authorize, adopt))

    async def handle_each(self, commands: Sequence[tuple[str, cmd.Command]]) -> list[Decision | BaseException]:
        """`handle` each (execution id, command), together; each one's decision, or the error it raised.

        One command's error does not stop the others. The executions not in the cache are read in
        one query first, not one each: a thousand timers due at one instant wake a thousand sleepers
        (which the cache let go), and a read per execution on the store's one thread was most of the
        cost of a wake. Their decisions then meet in the same group commits (`Database.append`).
        """
        missing = list(dict.fromkeys(execution_id for execution_id, _ in commands if execution_id not in self._cache))
        loaded = await self.db.run(self.db.store.load_executions, missing) if missing else {}
        return await asyncio.gather(
            *(
                self._to_the_end(self._handle_serially(execution_id, command, None, None, loaded))
                for execution_id, command in commands
            ),
            return_exceptions=True,
        )

    async def _handle_serially(
        self,
        execution_id: str,
        command: cmd.Command,
        authorize: Authorize | None,
        adopt: Callable[[WorkflowDefinition], WorkflowDefinition] | None,
        loaded: dict[str, tuple[ExecutionRow, list[RecordedEvent]]] | None = None,
    ) -> Decision:
        """``loaded``: executions read ahead (`handle_each`); this one's, if there, is used (and taken
        out) instead of a read when the cache does not hold it."""
        lock = self._locks.setdefault(execution_id, asyncio.Lock())
        try:
            async with lock:
                return await self._handle_locked(execution_id, command, authorize, adopt, loaded)
        finally:
            # Correctness rests on expected_seq, not on this lock: dropping it early costs nothing.
            if execution_id not in self._cache and not lock.locked() and self._locks.get(execution_id) is lock:
                del self._locks[execution_id]

    async def _handle_locked(
        self,
        execution_id: str,
        command: cmd.Command,
        authorize: Authorize | None,
        adopt: Callable[[WorkflowDefinition], WorkflowDefinition] | None,
        loaded: dict[str, tuple[ExecutionRow, list[RecordedEvent]]] | None = None,
    ) -> Decision:
        """``adopt``: the definition to decide with (and keep) instead of the execution's own, from it.

        What was read ahead (``loaded``) may be stale by now, if another decision committed since and
        the cache let the execution go again: its append then conflicts, and the retry reads afresh.
        """
        for _ in range(5):
            cached = await self._load(execution_id, loaded)
            if authorize is not None:
                authorize(cached.definition, cached.state)
            if not self._holds_item(command):
                return Decision(reply=Reply.STALE, state=cached.state)
            definition = cached.definition if adopt is None else adopt(cached.definition)
            now = self.clock.now_ms()
            decision = decide(
                definition,
                cached.state,
                command,
                now_ms=now,
                max_history_events=self.max_history_events,
                max_task_bytes=self.max_task_bytes,
            )
            assert decision.state is not None
            if not decision.events and not decision.actions:
                return decision
            try:
                merged, reserved = self._with_eager_leases(execution_id, cached.definition, decision, now)
                assert merged.state is not None
                summary = self._summary(merged.state, now)
                request = AppendRequest(
                    execution_id,
                    cached.state.last_seq,
                    merged.events,
                    merged.actions,
                    summary,
                    workflow=cached.workflow,
                )
                await self._commit(request, reserved)
            except ConcurrencyConflict:
                log.info("conflict on %s; reloading", execution_id)
                self._cache.pop(execution_id, None)
                continue
            except BaseException:
                self._cache.pop(execution_id, None)
                raise
            cached.state = merged.state
            cached.definition = definition
            cached.keep(merged.events)
            self._remember_or_forget(execution_id, cached)
            await self._publish(execution_id, merged)
            decision.state = merged.state
            return decision
        raise ConcurrencyConflict(f"execution {execution_id!r} kept changing under us; try again")

    async def state_of(self, execution_id: str) -> ExecutionState:
        return (await self._load(execution_id)).state

    def recent_events(self, execution_id: str, *, after_seq: int, until_seq: int) -> list[RecordedEvent] | None:
        """A code workflow's events after ``after_seq`` up to ``until_seq`` from memory, when the cache
        still holds them all (a sticky workflow task's); None when they must be read from the store."""
        cached = self._cache.get(execution_id)
        recent = None if cached is None else cached.recent
        if not recent or recent[0].seq > after_seq + 1 or recent[-1].seq < until_seq:
            return None
        return [event for event in recent if after_seq < event.seq <= until_seq]

    async def authorize(self, execution_id: str, authorize: Authorize) -> None:
        """Run an access check on the engine's record of the execution (cached: no store read)."""
        cached = await self._load(execution_id)
        authorize(cached.definition, cached.state)

    async def wait_terminal(self, execution_id: str, timeout_s: float) -> None:
        """Return when the execution reaches a terminal phase or the timeout passes."""
        state = await self.state_of(execution_id)
        if state.phase.terminal:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._terminal_waiters.setdefault(execution_id, []).append(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            pass
        finally:
            waiters = self._terminal_waiters.get(execution_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._terminal_waiters.pop(execution_id, None)

    # -- reads and writes for the API and the operator ----------------------------------------
    # The one door to the store for the layers above: they never reach `db.store` themselves,
    # so every call runs on the database's executor and the store can change behind this class.

    async def get_workflow(self, name: str) -> WorkflowRow | None:
        """The workflow as stored. An engine that is not split keeps the rows it read or wrote: every
        write of a workflow goes through it (`put_workflow`). Engines that split the shards share
        their workflows with the others, so they read the store each time."""
        if not self.split and (kept := self._workflow_rows.get(name)) is not None:
            self._workflow_rows.move_to_end(name)
            return kept[0]
        row = await self.db.run(self.db.store.get_workflow, name)
        if row is not None:
            self._keep_workflow(row)
        return row

    def _keep_workflow(self, row: WorkflowRow) -> None:
        """Keep ``row`` unless a newer version is kept already (a read and a write that crossed)."""
        if self.split:
            return
        kept = self._workflow_rows.get(row.name)
        if kept is not None and kept[0].version > row.version:
            return
        size = json_size(row.spec)
        self._kept_workflow_bytes += size - (kept[1] if kept is not None else 0)
        self._workflow_rows[row.name] = (row, size)
        self._workflow_rows.move_to_end(row.name)
        while self._kept_workflow_bytes > MAX_KEPT_WORKFLOW_BYTES:
            _, (_, forgotten) = self._workflow_rows.popitem(last=False)
            self._kept_workflow_bytes -= forgotten

    async def list_workflows(self) -> list[WorkflowRow]:
        return await self.db.run(self.db.store.list_workflows)

    async def put_workflow(self, name: str, spec: dict[str, Any]) -> WorkflowRow:
        """Create or replace a workflow's spec, stamped with this engine's clock."""
        row = await self.db.run(self.db.store.put_workflow, name, spec, now_ms=self.clock.now_ms())
        self._keep_workflow(row)
        return row

    async def get_execution(self, execution_id: str) -> ExecutionRow | None:
        """The execution's stored row (its summary), or None if it never started."""
        return await self.db.run(self.db.store.get_execution, execution_id)

    async def list_executions(
        self, *, workflow: str | None = None, phase: str | None = None, limit: int = 100
    ) -> list[ExecutionRow]:
        """Newest first."""
        return await self.db.run(self.db.store.list_executions, workflow=workflow, phase=phase, limit=limit)

    async def list_executions_page(
        self, query: ExecutionQuery, *, after: PageCursor | None = None, limit: int = 50
    ) -> ExecutionPage:
        """A page of the executions ``query`` matches, newest first, and the cursor of the next."""
        return await self.db.run(self.db.store.list_executions_page, query, after=after, limit=limit)

    async def count_executions(self, query: ExecutionQuery) -> dict[str, int]:
        """How many executions ``query`` matches in each phase, whatever phases it names."""
        return await self.db.run(self.db.store.count_executions_by_phase, query)

    async def labels_of(self, execution_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The labels of each of these executions that has any."""
        return await self.db.run(self.db.store.labels_of, list(execution_ids))

    async def load_history(
        self, execution_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The execution's events after `after_seq`, in order (at most `limit`)."""
        return await self.db.run(self.db.store.load_history, execution_id, after_seq=after_seq, limit=limit)

    async def get_dead_letter(self, dead_letter_id: str) -> DeadLetterRow | None:
        return await self.db.run(self.db.store.get_dead_letter, dead_letter_id)

    async def shard_of_execution(self, execution_id: str) -> int | None:
        """The shard an execution was placed in (scale-out); None when there is no such execution."""
        return await self.db.run(self.db.store.shard_of_execution, execution_id)

    async def shard_owners(self) -> list[ShardOwnerRow]:
        return await self.db.run(self.db.store.list_shard_owners)

    def shard_count(self) -> int:
        """Fixed for a store, read when it was migrated."""
        return self.db.store.shard_count()

    async def list_dead_letters(self, *, execution_id: str | None = None) -> list[DeadLetterRow]:
        """Dead letters not redriven yet, of one execution or of all."""
        return await self.db.run(self.db.store.list_dead_letters, execution_id=execution_id)

    # -- internals -----------------------------------------------------------------------

    async def _to_the_end(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` to its end even if the caller is cancelled, which still sees the cancellation.

        A caller goes away mid-decision when its worker's connection drops (the API server then
        cancels the call). Cancelled while awaiting its commit, a decision could land in the store
        without ever being published: the dispatcher would not learn of the tasks it scheduled, and
        they would wait, offered to nobody, until the next restart. Found by the operator chaos test.
        """
        running = asyncio.ensure_future(work)
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            self._finishing.add(running)  # a strong reference until it ends
            running.add_done_callback(self._finished_alone)
            raise

    def _finished_alone(self, running: asyncio.Future[Any]) -> None:
        self._finishing.discard(running)
        if not running.cancelled() and (error := running.exception()) is not None:
            log.info("a decision whose caller went away failed: %s: %s", type(error).__name__, error)

    def _holds_item(self, command: cmd.Command) -> bool:
        """An item's completion counts only from the worker its task is leased to.

        The history does not record who leased an item (`engine.fan_out`): the tasks table does,
        and the dispatcher's book mirrors it, changed only by committed decisions under this same
        lock. A task the dispatcher never leased has no holder, so nobody's completion counts.
        """
        if not isinstance(command, cmd.TaskCompleted) or command.worker_id is None or item_of(command.token) is None:
            return True
        view = self._task_view
        return view is None or view.holder_of(command.token) == command.worker_id

    async def _commit(self, request: AppendRequest, reserved: list[cmd.TaskStarted]) -> None:
        """Group-commit one decision; a failure gives the reserved pollers back."""
        try:
            await self.db.append(request)
        except BaseException:
            if reserved and self._eager is not None:
                self._eager.release(reserved)
            raise

    def _with_eager_leases(
        self, execution_id: str, definition: WorkflowDefinition, decision: Decision, now: int
    ) -> tuple[Decision, list[cmd.TaskStarted]]:
        """The decision plus the leases of its new tasks to workers already waiting for them."""
        if self._eager is None or decision.state is None or decision.state.phase.terminal:
            return decision, []
        reserved = self._eager.reserve(execution_id, decision.state.workflow, decision.actions, now_ms=now)
        if not reserved:
            return decision, []
        merged = Decision(list(decision.events), list(decision.actions), decision.reply, decision.state)
        granted: list[cmd.TaskStarted] = []
        refused: list[cmd.TaskStarted] = []
        for started in reserved:
            assert merged.state is not None
            # The decision's state is its own copy, held by nobody else until it commits: each lease
            # changes it in place (one copy of the state a step, not one per decision).
            lease = decide(
                definition,
                merged.state,
                started,
                now_ms=now,
                max_history_events=self.max_history_events,
                max_task_bytes=self.max_task_bytes,
                owned=True,
            )
            if lease.reply != Reply.ACCEPTED or not (lease.events or lease.actions):  # an item's: actions only
                refused.append(started)
                continue
            merged.events.extend(lease.events)
            merged.actions.extend(lease.actions)
            merged.state = lease.state
            granted.append(started)
        if refused:
            self._eager.release(refused)
        return merged, granted

    async def missing(self, execution_id: str) -> ExecutionNotFound:
        """The error for an execution the store does not hold: when the retention period removed it
        and where its history went, if it did; else plainly not found."""
        retired = await self.db.run(self.db.store.get_retired, execution_id)
        if retired is None:
            return ExecutionNotFound(f"execution {execution_id!r} not found")
        where = (
            f"its history was exported to {retired.export}"
            if retired.export
            else "its history was not exported (no export directory was set)"
        )
        return ExecutionNotFound(
            f"execution {execution_id!r} ({retired.phase}, ended {rfc3339(retired.finished_at_ms)}) was removed"
            f" from the store on {rfc3339(retired.retired_at_ms)} by the retention period; {where}"
        )

    def forget_cached(self) -> None:
        """Drop every cached execution (shards changed hands): each is read again when next needed."""
        self._cache.clear()

    def forget(self, execution_id: str) -> None:
        """Drop what is kept in memory of an execution removed from the store."""
        self._cache.pop(execution_id, None)
        lock = self._locks.get(execution_id)
        if lock is not None and not lock.locked():
            del self._locks[execution_id]

    async def _load(
        self, execution_id: str, ahead: dict[str, tuple[ExecutionRow, list[RecordedEvent]]] | None = None
    ) -> _Cached:
        """The cached execution, else the one read ``ahead`` (taken out: used once), else read now."""
        cached = self._cache.get(execution_id)
        if cached is not None:
            self._cache.move_to_end(execution_id)
            return cached
        loaded = ahead.pop(execution_id, None) if ahead else None
        if loaded is None:
            loaded = await self.db.run(self.db.store.load_execution, execution_id)
        if loaded is None:
            raise await self.missing(execution_id)
        row, history = loaded
        definition = self.definition_for(row.spec, started=True)
        cached = _Cached(definition, fold(definition, execution_id, history), row.workflow)
        cached.keep(history[-RECENT_EVENTS:])
        # A read of a sleeper (a client's describe, the reply to its start) must not cache it: at
        # 10,000 cache entries, a store of sleepers read once each filled the cache with them.
        self._remember_or_forget(execution_id, cached)
        return cached

    def _remember_or_forget(self, execution_id: str, cached: _Cached) -> None:
        """Keep what will move soon; a sleeping or approval-waiting execution costs only its row.

        It is rebuilt from the store when its timer fires or its approver answers, so a
        hundred thousand of them asleep take no engine memory.
        """
        if cached.state.display_phase() in _DORMANT:
            self._cache.pop(execution_id, None)
        else:
            self._remember(execution_id, cached)

    def _remember(self, execution_id: str, cached: _Cached) -> None:
        self._cache[execution_id] = cached
        self._cache.move_to_end(execution_id)
        while len(self._cache) > self._cache_size:
            evicted, _ = self._cache.popitem(last=False)
            lock = self._locks.get(evicted)
            if lock is not None and not lock.locked():
                del self._locks[evicted]

    @staticmethod
    def _summary(state: ExecutionState, now: int) -> ExecutionSummary:
        return ExecutionSummary(
            phase=state.display_phase().value,
            current_steps=state.current_steps(),
            output=state.output,
            error=state.error,
            wake_at_ms=state.wake_at_ms(),
            updated_at_ms=now,
        )

    async def _publish(self, execution_id: str, decision: Decision) -> None:
        if decision.events:
            for history_listener in self._history_listeners:
                history_listener(execution_id, decision.events)
        if decision.state is not None:
            for change_listener in self._change_listeners:
                change_listener(execution_id, decision.state)
        if decision.actions:
            workflow = decision.state.workflow if decision.state is not None else ""
            for listener in self._listeners:
                result = listener(execution_id, workflow, decision.actions)
                if result is not None:
                    await result
        if decision.state is not None and decision.state.phase.terminal:
            for future in self._terminal_waiters.pop(execution_id, []):
                if not future.done():
                    future.set_result(None)
