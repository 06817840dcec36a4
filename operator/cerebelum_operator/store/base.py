"""The event store's contract: the engine's only source of truth.

Events and the rows derived from them (tasks, timers, dead letters and the
execution index) change together in one transaction, so a crash between any
two lines of the engine leaves a consistent state.
"""

from __future__ import annotations

import abc
import base64
import binascii
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..engine.actions import Action
from ..engine.events import RecordedEvent
from ..engine.rates import RateLimit

if TYPE_CHECKING:
    from .pg_shard_locks import ShardSession

__all__ = [
    "AppendRequest",
    "ConcurrencyConflict",
    "DeadLetterRow",
    "EventStore",
    "ExecutionExists",
    "ExecutionPage",
    "ExecutionQuery",
    "ExecutionRetired",
    "ExecutionRow",
    "ExecutionSummary",
    "FlowSlotRow",
    "FlowSlotTaken",
    "MessageRow",
    "NewExecution",
    "PageCursor",
    "RateLimitReached",
    "RetiredExecution",
    "ScheduleExists",
    "ScheduleRow",
    "ShardNotOwned",
    "ShardOwnerRow",
    "StoreCorrupted",
    "StoreError",
    "StoreLocked",
    "StoreTooNew",
    "StoreUnavailable",
    "TaskQueueRow",
    "TaskRow",
    "TaskStartRow",
    "TimerRow",
    "WorkflowPauseRow",
    "WorkflowRow",
]

JSON = Any


class StoreError(Exception):
    """Base class of the store's own errors."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, or dropped the connection (a restart, a network cut).

    Transient: the same call may succeed once the database is back, on a fresh connection. When it
    interrupts a commit, the write may or may not have landed: callers that write decide again
    from a reloaded state, never from what they meant to write.
    """


class StoreCorrupted(StoreError):
    """The database's file or pages are damaged ("file is not a database", "disk image is malformed").

    Permanent: unlike `StoreUnavailable`, retrying cannot help, so callers must not be told to;
    the database has to be restored from a backup or repaired by hand.
    """


class StoreLocked(StoreError):
    """Another engine already runs on this store; two would time out each other's leases."""


class StoreTooNew(StoreError):
    """A newer release changed this store in a way this engine cannot read (its schema, or events of
    a newer format in the histories): refused before anything runs, so a rollback never half-works."""


class ConcurrencyConflict(StoreError):
    """Another writer appended to the execution first: reload and decide again."""


class ExecutionExists(StoreError):
    """An execution with this id already exists."""


class ExecutionRetired(ExecutionExists):
    """An execution with this id ran and was removed by the retention period: its id is not reused, or
    a start retried after the removal would run the whole execution again."""


class FlowSlotTaken(StoreError):
    """An admission to a flow key's slot, when engines split the shards: the executions every engine
    admitted already hold all ``limit`` slots of ``workflow``'s key ``key``. The write did not land;
    the execution waits for a slot to free."""

    def __init__(self, workflow: str, key: str, *, limit: int) -> None:
        super().__init__(f"workflow {workflow!r}: the {limit} slots of flow key {key!r} are taken")
        self.workflow = workflow
        self.key = key
        self.limit = limit


class RateLimitReached(StoreError):
    """A lease of a rate-limited task, when engines split the shards: the starts every engine recorded
    in the store already fill the window of its queue (``task_queue``) or of its workflow's flow key
    (``key``; the other None). The write did not land; the window has room again at ``frees_at_ms``
    (on the clock of the engines' decisions)."""

    def __init__(self, task_queue: str | None, *, key: str | None = None, frees_at_ms: int) -> None:
        which = f"task queue {task_queue!r}" if task_queue is not None else f"flow key {key!r}"
        super().__init__(f"{which}: its rate limit's window is full until {frees_at_ms} ms")
        self.task_queue = task_queue
        self.key = key
        self.frees_at_ms = frees_at_ms


class ShardNotOwned(StoreError):
    """A write for an execution of a shard this store's fence no longer holds (or never held).

    Raised when another replica took the shard (its epoch moved on): the write did not land, and
    the caller must stop working on that shard (scale-out fencing, `EventStore.set_fence`).
    """


class ScheduleExists(StoreError):
    """A schedule with this key already exists."""


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    name: str
    spec: dict[str, JSON]
    version: int
    created_at_ms: int
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class NewExecution:
    """What `append` needs to create an execution with its first events."""

    workflow: str
    spec: dict[str, JSON]
    spec_hash: str
    input: JSON
    # A continue-as-new run after the first: (the chain's first run id, this run's number).
    chain: tuple[str, int] | None = None
    # Written with the execution row, in its transaction (migration 8); validated by `model.labels`.
    labels: Mapping[str, str] = field(default_factory=dict)
    # The shard it is placed in (migration 9): a child's parent's, a run's chain's; None: from its id.
    shard: int | None = None


@dataclass(frozen=True, slots=True)
class ShardOwnerRow:
    """A shard's owner (migration 9): ``epoch`` goes up each time a replica takes it."""

    shard: int
    epoch: int
    owner: str | None
    address: str | None
    taken_at_ms: int | None


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """A schedule: its spec as written and the core's state, both JSON (`engine.schedules`)."""

    key: str
    spec: dict[str, JSON]
    state: dict[str, JSON]
    next_fire_at_ms: int | None
    revision: int
    created_at_ms: int
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A message of the outbox: from ``execution_id``'s decision to ``target`` (see engine.actions.SendMessage)."""

    message_id: str
    execution_id: str
    kind: str
    target: str
    seq: int
    body: JSON
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class ExecutionSummary:
    """The execution index row, derived from the state after the appended events."""

    phase: str
    current_steps: list[str]
    output: JSON
    error: str | None
    wake_at_ms: int | None
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One `append`'s arguments, so many can be committed in one transaction (`append_batch`)."""

    execution_id: str
    expected_seq: int
    events: Sequence[RecordedEvent]
    actions: Sequence[Action]
    summary: ExecutionSummary
    new_execution: NewExecution | None = None
    # The execution's workflow, when the caller knows it: then a batch can advance the row without
    # reading it back (store/multirow.py); a wrong one is a conflict, never a write.
    workflow: str | None = None


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    execution_id: str
    workflow: str
    spec: dict[str, JSON]
    spec_hash: str
    input: JSON
    phase: str
    current_steps: list[str]
    output: JSON
    error: str | None
    wake_at_ms: int | None
    created_at_ms: int
    updated_at_ms: int
    last_seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionQuery:
    """Which executions a listing shows; every filter given must hold (an empty one is not applied)."""

    workflow: str | None = None
    phases: tuple[str, ...] = ()  # any of them; () = all
    labels: tuple[tuple[str, str], ...] = ()  # every (key, value) must match
    created_from_ms: int | None = None  # inclusive
    created_to_ms: int | None = None  # exclusive
    id_contains: str | None = None  # a substring of the execution id, ASCII case ignored (% and _ are literal)


# A token holds a time and an execution id (at most 128 characters): anything much longer is not one.
MAX_PAGE_TOKEN = 512


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where a page ended: the last row's (created_at_ms, execution_id), the listing's sort key.

    A keyset, not an offset: the next page starts strictly after this key, so executions started
    meanwhile (newer, on earlier pages) never shift it, and it costs the same on page 1 and 1,000.
    """

    created_at_ms: int
    execution_id: str

    def encode(self) -> str:
        """An opaque URL-safe token (base64url, unpadded): callers hand it back, never read it."""
        raw = f"{self.created_at_ms}:{self.execution_id}".encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, token: str) -> PageCursor:
        """The cursor a token encodes; ValueError for anything `encode` did not make."""
        if not token or len(token) > MAX_PAGE_TOKEN:
            raise ValueError("not a page token of this listing (empty, or too long)")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            created, _, execution_id = raw.partition(":")
            created_at_ms = int(created)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ValueError("not a page token of this listing") from None
        cursor = cls(created_at_ms, execution_id)
        if not execution_id or cursor.encode() != token:  # only what `encode` makes: one token per cursor
            raise ValueError("not a page token of this listing")
        return cursor


@dataclass(frozen=True, slots=True)
class ExecutionPage:
    """One page of a listing, newest first, and where the next one starts (None: this was the last)."""

    rows: list[ExecutionRow]
    next: PageCursor | None


@dataclass(frozen=True, slots=True)
class TaskRow:
    token: str
    execution_id: str
    step: str
    attempt: int
    poll: int
    task_queue: str
    arguments: JSON
    visible_at_ms: int
    timeout_ms: int
    lease_ms: int
    heartbeat_required: bool
    sticky_worker_id: str | None
    state: str  # "queued" | "leased"
    worker_id: str | None
    lease_expires_at_ms: int | None
    attempt_deadline_ms: int | None
    cancel_requested: bool
    progress: JSON
    workflow: str
    # Flow control (migration 7): what the dispatcher orders and limits the task by.
    priority: int = 0
    flow_key: str | None = None
    key_rate_count: int | None = None
    key_rate_period_ms: int | None = None

    @property
    def key_rate_limit(self) -> RateLimit | None:
        if self.key_rate_count is None or self.key_rate_period_ms is None:
            return None
        return RateLimit(self.key_rate_count, self.key_rate_period_ms)


@dataclass(frozen=True, slots=True)
class TaskQueueRow:
    """An engine-wide setting of one task queue: paused (and why), and its rate limit."""

    name: str
    paused: bool
    note: str
    rate_count: int | None
    rate_period_ms: int | None
    updated_at_ms: int

    @property
    def rate_limit(self) -> RateLimit | None:
        if self.rate_count is None or self.rate_period_ms is None:
            return None
        return RateLimit(self.rate_count, self.rate_period_ms)


@dataclass(frozen=True, slots=True)
class TaskStartRow:
    """A task a rate limit counted, and when its lease committed (its StepStarted's time)."""

    token: str
    task_queue: str
    flow_key: str | None  # set only when the task's key limit counted it
    started_at_ms: int
    expires_at_ms: int  # the start plus the longest period that counted it: no window sees it after


@dataclass(frozen=True, slots=True)
class TimerRow:
    timer_id: str
    execution_id: str
    fire_at_ms: int


@dataclass(frozen=True, slots=True)
class FlowSlotRow:
    """An execution of a workflow with a concurrency limit: its key and place, running or waiting."""

    execution_id: str
    workflow: str
    flow_key: str
    priority: int
    limit: int
    running: bool
    since_ms: int


@dataclass(frozen=True, slots=True)
class WorkflowPauseRow:
    """A paused workflow: its new executions start held until it is resumed."""

    workflow: str
    reason: str
    by: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class RetiredExecution:
    """An execution the retention period removed: when it finished, when it went, and where its
    history was exported (None: removed without export)."""

    execution_id: str
    workflow: str
    phase: str
    finished_at_ms: int
    retired_at_ms: int
    export: str | None


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    dead_letter_id: str
    execution_id: str
    step: str
    attempt: int
    error: str
    created_at_ms: int
    resolved_at_ms: int | None


class EventStore(abc.ABC):
    """One abstract store; one subclass per database, chosen by URL (see `open_store`).

    Methods are synchronous: the runtime calls them from a dedicated thread.
    """

    # -- lifecycle ------------------------------------------------------------------------
    @abc.abstractmethod
    def migrate(self) -> int:
        """Apply pending versioned migrations; return the schema version. Safe to run twice."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connections, and the exclusive claim if `claim_exclusively` took one."""

    def claim_exclusively(self) -> None:
        """Refuse (`StoreLocked`) if another engine runs on this store; else keep it ours until `close`.

        Only the engine calls this: tools and tests may still open the store beside it. A store
        whose database serialises engines by other means (PostgreSQL behind the operator's Lease)
        does nothing.
        """
        return

    # -- workflows (the dev-mode registry; in Kubernetes they are CRs) -----------------------
    @abc.abstractmethod
    def put_workflow(self, name: str, spec: dict[str, JSON], *, now_ms: int) -> WorkflowRow:
        """Create or replace; version goes up by one only when the spec changed."""

    @abc.abstractmethod
    def get_workflow(self, name: str) -> WorkflowRow | None: ...

    @abc.abstractmethod
    def list_workflows(self) -> list[WorkflowRow]: ...

    # -- executions and their history ----------------------------------------------------------
    @abc.abstractmethod
    def append(
        self,
        execution_id: str,
        *,
        expected_seq: int,
        events: Sequence[RecordedEvent],
        actions: Sequence[Action],
        summary: ExecutionSummary,
        new_execution: NewExecution | None = None,
    ) -> None:
        """Append events (seq expected_seq+1, +2, …), apply the actions and update the index row.

        All or nothing. Raises ConcurrencyConflict when the execution's last seq is not
        `expected_seq`, ExecutionExists when `new_execution` is given for an existing id.
        Action semantics:
          ScheduleTask -> insert a queued task row;  LeaseTask -> mark it leased;
          DeleteTask -> delete the row (no error if absent);
          CancelTask -> delete a queued row, or set cancel_requested on a leased one;
          StartTimer -> insert (replace) a timer row;  CancelTimer -> delete it (no error if absent);
          AddDeadLetter -> insert;  ResolveDeadLetter -> set resolved_at_ms = summary.updated_at_ms;
          ReplaceSpec -> set the execution's spec and spec_hash (a redrive that adopted a new one);
          WaitForFlowSlot -> insert the execution's flow slot, waiting (replace one left by a redrive);
          AdmitFlowSlot -> mark it running;  FreeFlowSlot -> delete it (no error if absent).
        """

    def append_batch(self, requests: Sequence[AppendRequest]) -> list[Exception | None]:
        """Apply many appends, each all or nothing; the outcome of each (None when it committed).

        Group commit: a store may commit them in one transaction, which is what makes many
        concurrent executions cheap. A request that fails must not take the others with it.
        This default commits them one by one.
        """
        outcomes: list[Exception | None] = []
        for request in requests:
            try:
                self.append(
                    request.execution_id,
                    expected_seq=request.expected_seq,
                    events=request.events,
                    actions=request.actions,
                    summary=request.summary,
                    new_execution=request.new_execution,
                )
            except Exception as error:
                outcomes.append(error)
            else:
                outcomes.append(None)
        return outcomes

    @abc.abstractmethod
    def get_execution(self, execution_id: str) -> ExecutionRow | None: ...

    # -- retention ------------------------------------------------------------------------
    @abc.abstractmethod
    def finished_before(self, cutoff_ms: int, *, limit: int) -> list[str]:
        """Ids of executions that ended before ``cutoff_ms`` (their last change), oldest first."""

    @abc.abstractmethod
    def retire(self, execution_id: str, *, retired_at_ms: int, export: str | None) -> RetiredExecution | None:
        """Remove an ended execution and everything of it in one transaction, leaving a `RetiredExecution`;
        None (nothing removed) when it is not there or has not ended (a redrive may have reopened it)."""

    @abc.abstractmethod
    def get_retired(self, execution_id: str) -> RetiredExecution | None: ...

    # -- flow control ---------------------------------------------------------------------
    @abc.abstractmethod
    def list_flow_slots(self) -> list[FlowSlotRow]:
        """Every execution that holds or waits for a slot of its flow key, oldest first."""

    @abc.abstractmethod
    def flow_slots_here(self) -> tuple[list[FlowSlotRow], dict[tuple[str, str], int]]:
        """The slots of the executions of this store's fenced shards (every one without a fence), oldest
        first, and every engine's running slots per (workflow, key) of theirs: what an engine of a
        split admits by, the store having the last word (`FlowSlotTaken`)."""

    @abc.abstractmethod
    def put_workflow_pause(self, workflow: str, *, reason: str, by: str, now_ms: int) -> WorkflowPauseRow: ...

    @abc.abstractmethod
    def delete_workflow_pause(self, workflow: str) -> bool:
        """False when the workflow was not paused."""

    @abc.abstractmethod
    def list_workflow_pauses(self) -> list[WorkflowPauseRow]: ...

    @abc.abstractmethod
    def held_executions(self, workflow: str, *, after_id: str, limit: int) -> list[str]:
        """Ids of the workflow's executions shown Paused or Queued after ``after_id``, in id order; with a
        fence (`set_fence`), of the fenced shards only."""

    def load_execution(self, execution_id: str) -> tuple[ExecutionRow, list[RecordedEvent]] | None:
        """The execution and its whole history in one call: what the engine needs to rebuild it."""
        row = self.get_execution(execution_id)
        return None if row is None else (row, self.load_history(execution_id))

    def load_executions(self, execution_ids: Sequence[str]) -> dict[str, tuple[ExecutionRow, list[RecordedEvent]]]:
        """`load_execution` of many at once, by id (an unknown id is left out): the timers wake many
        executions together, and one read for all of them costs far less than one each."""
        found: dict[str, tuple[ExecutionRow, list[RecordedEvent]]] = {}
        for execution_id in execution_ids:
            loaded = self.load_execution(execution_id)
            if loaded is not None:
                found[execution_id] = loaded
        return found

    @abc.abstractmethod
    def list_executions(
        self, *, workflow: str | None = None, phase: str | None = None, limit: int = 100
    ) -> list[ExecutionRow]:
        """Newest first."""

    @abc.abstractmethod
    def list_executions_page(self, query: ExecutionQuery, *, after: PageCursor | None, limit: int) -> ExecutionPage:
        """Up to ``limit`` executions matching ``query`` after the cursor, newest first (created_at_ms,
        then execution_id, both descending); ``next`` is None when no row follows."""

    @abc.abstractmethod
    def count_executions_by_phase(self, query: ExecutionQuery) -> dict[str, int]:
        """How many executions match ``query`` in each phase (phases with none are absent).

        ``query.phases`` is ignored: a listing filtered by phase still shows every phase's count.
        """

    @abc.abstractmethod
    def labels_of(self, execution_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The labels of each of these executions that has any (one without labels is absent)."""

    @abc.abstractmethod
    def active_execution_ids(self, *, shards: Collection[int] | None = None) -> list[str]:
        """Ids of executions whose phase is not Succeeded, Failed or Cancelled (of these shards only)."""

    @abc.abstractmethod
    def load_history(self, execution_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[RecordedEvent]:
        """Events in seq order."""

    # -- tasks ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def load_tasks(self, *, state: str | None = None, shards: Collection[int] | None = None) -> list[TaskRow]:
        """All task rows (of one state, of these shards' executions), for the dispatcher to rebuild its queues."""

    @abc.abstractmethod
    def get_task(self, token: str) -> TaskRow | None: ...

    @abc.abstractmethod
    def extend_lease(self, token: str, *, worker_id: str, lease_expires_at_ms: int, progress: JSON) -> TaskRow | None:
        """Heartbeat: extend a leased task held by `worker_id`; None when it is not (any more)."""

    @abc.abstractmethod
    def delete_task(self, token: str) -> None: ...

    # -- task queues' flow control (migration 7) ---------------------------------------------------
    # A LeaseTask of a task with a key rate limit, or of a queue with a rate limit, also records a
    # `TaskStartRow` at the decision's time, in the lease's own transaction.
    @abc.abstractmethod
    def list_task_queues(self) -> list[TaskQueueRow]:
        """Every queue with a setting, by name."""

    @abc.abstractmethod
    def put_task_queue(
        self, name: str, *, paused: bool, note: str, rate_limit: RateLimit | None, now_ms: int
    ) -> TaskQueueRow:
        """Create or replace a queue's setting."""

    @abc.abstractmethod
    def live_task_starts(self, now_ms: int) -> list[TaskStartRow]:
        """Starts some window still sees at ``now_ms``, oldest first: what a restarted engine rebuilds."""

    @abc.abstractmethod
    def prune_task_starts(self, now_ms: int) -> int:
        """Forget the starts no window sees any more; how many went."""

    # -- timers and dead letters -------------------------------------------------------------------
    @abc.abstractmethod
    def due_timers(self, *, until_ms: int, limit: int, shards: Collection[int] | None = None) -> list[TimerRow]:
        """Timers firing at or before `until_ms`, soonest first (of these shards' executions only)."""

    @abc.abstractmethod
    def delete_timer(self, timer_id: str) -> None: ...

    @abc.abstractmethod
    def list_dead_letters(
        self, *, execution_id: str | None = None, include_resolved: bool = False
    ) -> list[DeadLetterRow]: ...

    @abc.abstractmethod
    def get_dead_letter(self, dead_letter_id: str) -> DeadLetterRow | None: ...

    # -- the outbox and continue-as-new chains ---------------------------------------------------
    @abc.abstractmethod
    def pending_messages(self, *, limit: int, shards: Collection[int] | None = None) -> list[MessageRow]:
        """Outbox messages not delivered yet, oldest first (by time, then each sender's seq).

        With ``shards``, only those their senders' shards' owner relays."""

    @abc.abstractmethod
    def delete_message(self, message_id: str) -> None:
        """The message was delivered (or can never be): it leaves the outbox."""

    @abc.abstractmethod
    def latest_run(self, first_run_id: str) -> str | None:
        """The id of the latest run of the chain that ``first_run_id`` began; None when it has no later run."""

    # -- shards (migration 9; scale-out) ----------------------------------------------------------
    @abc.abstractmethod
    def shard_count(self) -> int:
        """How many shards this store's executions are partitioned into (fixed once migrated)."""

    @abc.abstractmethod
    def shard_of_execution(self, execution_id: str) -> int | None:
        """The shard an execution was placed in; None when there is no such execution."""

    @abc.abstractmethod
    def list_shard_owners(self) -> list[ShardOwnerRow]:
        """Every shard's row, by shard."""

    @abc.abstractmethod
    def take_shard(self, shard: int, *, owner: str, address: str | None, now_ms: int) -> int:
        """Raise the shard's epoch and record its new owner; the new epoch.

        Waits for commits that checked the old epoch to finish (they hold the row shared), so once
        this returns no write of the previous owner can land: it is fenced off.
        """

    @abc.abstractmethod
    def release_shard(self, shard: int, *, epoch: int) -> bool:
        """Clear the owner if ``epoch`` is still the shard's (a drained hand-over); False if it moved on."""

    def shard_session(self, member: str) -> ShardSession:
        """A connection of its own through which `member` holds shards (`--shards auto`): PostgreSQL only."""
        raise NotImplementedError("engines share shards by session locks on PostgreSQL only")

    @abc.abstractmethod
    def set_fence(self, epochs: Mapping[int, int] | None) -> None:
        """The shards this process owns, with the epoch it took each at; None: every shard, unchecked.

        With a fence, every append checks in its own transaction that the epochs still stand, and
        refuses (`ShardNotOwned`) a write for an execution of a shard outside it; and the reads of
        work (`load_tasks`, `due_timers`, `pending_messages`, `active_execution_ids`) given no
        ``shards`` cover the fence's shards only. Other reads (an execution, a listing) see all.
        """

    # -- schedules -------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_schedule(
        self, key: str, *, spec: dict[str, JSON], state: dict[str, JSON], next_fire_at_ms: int | None, now_ms: int
    ) -> ScheduleRow:
        """A new schedule at revision 1; ScheduleExists when the key is taken."""

    @abc.abstractmethod
    def update_schedule(
        self,
        key: str,
        *,
        expected_revision: int,
        state: dict[str, JSON],
        next_fire_at_ms: int | None,
        now_ms: int,
        spec: dict[str, JSON] | None = None,
    ) -> ScheduleRow | None:
        """Write the state (and the spec, when given) if the row is still at ``expected_revision``.

        None when it is not (another writer came first) or the schedule is gone: read it again.
        A fire's state is written alone, after its executions started; their ids, derived from
        the due times, make a start repeated after a lost write a no-op (docs/architecture.md).
        """

    @abc.abstractmethod
    def get_schedule(self, key: str) -> ScheduleRow | None: ...

    @abc.abstractmethod
    def list_schedules(self, *, namespace: str | None = None) -> list[ScheduleRow]:
        """By key; ``namespace``: only the keys ``namespace/…`` ("" for dev mode's bare names)."""

    @abc.abstractmethod
    def delete_schedule(self, key: str) -> bool:
        """Whether there was such a schedule."""
