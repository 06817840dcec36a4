"""`SqlEventStore`: the event store on SQLAlchemy Core, shared by SQLite and PostgreSQL.

Every statement is built once, in `__init__`, with bind parameters, so the hot path
(`append`) only binds values and hits SQLAlchemy's compiled-statement cache; nothing is
reflected at runtime. Subclasses supply what differs per database: the engine, the
conflict-aware INSERT, and how concurrent migrators are serialised.
"""

from __future__ import annotations

import abc
import contextlib
import json
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, fields
from itertools import groupby
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Table,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.sql.dml import Insert

from ..engine.actions import (
    Action,
    AddDeadLetter,
    AdmitFlowSlot,
    CancelTask,
    CancelTimer,
    DeleteTask,
    FreeFlowSlot,
    LeaseTask,
    ReplaceSpec,
    ResolveDeadLetter,
    ScheduleTask,
    SendMessage,
    StartTimer,
    WaitForFlowSlot,
)
from ..engine.events import RecordedEvent, event_from_record
from ..engine.rates import RateLimit
from ..engine.state import ExecutionPhase
from ..model.limits import json_text
from . import schema
from .base import (
    JSON,
    AppendRequest,
    ConcurrencyConflict,
    DeadLetterRow,
    EventStore,
    ExecutionExists,
    ExecutionRetired,
    ExecutionRow,
    ExecutionSummary,
    FlowSlotTaken,
    MessageRow,
    NewExecution,
    RateLimitReached,
    RetiredExecution,
    StoreCorrupted,
    StoreUnavailable,
    TaskQueueRow,
    TaskRow,
    TaskStartRow,
    TimerRow,
    WorkflowRow,
)
from .held import DriverTransactions, HeldWriter
from .migrations import apply_migrations
from .multirow import MultiRow
from .prepared import PreparedStatements, run_sql
from .sql_flow import SqlFlowControl
from .sql_listing import SqlListing, label_rows
from .sql_schedules import SqlSchedules
from .sql_shards import SqlShards

__all__ = ["SqlEventStore", "dumps_json", "is_corruption"]

_TERMINAL_PHASES = [p.value for p in ExecutionPhase if p.terminal]
_RETIRED_SINCE = 5  # the schema version that has retired_executions
_LABELS_SINCE = 8  # the schema version that has execution_labels
_SHARDS_SINCE = 9  # the schema version that has executions.shard and shard_owners
_LOAD_CHUNK = 500  # executions per statement of load_executions: bounds its parameters


def dumps_json(value: JSON) -> str:
    """Compact JSON for every JSON column: smaller rows, a little less work per write (`json_text`)."""
    return json_text(value)


def _found(conn: Connection, statement: Any, param: str, values: list[str]) -> set[str]:
    """What ``statement`` (one column, ``param`` an expanding IN) selects for ``values``, a chunk of
    them a statement (bounded parameters)."""
    found: set[str] = set()
    for start in range(0, len(values), _LOAD_CHUNK):
        found.update(conn.execute(statement, {param: values[start : start + _LOAD_CHUNK]}).scalars())
    return found


def _columns(table: Table, row_type: type[Any]) -> list[Any]:
    """The table's columns in the dataclass's field order, so rows map positionally."""
    return [table.c[f.name] for f in fields(row_type)]


_ActionParams = Callable[[Any, "_AppendContext"], dict[str, Any]]


class _AppendContext:
    """What action handlers need besides the action itself."""

    __slots__ = ("execution_id", "leases", "now_ms", "workflow")

    def __init__(self, execution_id: str, workflow: str, now_ms: int, leases: dict[str, LeaseTask]) -> None:
        self.execution_id = execution_id
        self.workflow = workflow
        self.now_ms = now_ms
        self.leases = leases  # tasks scheduled and leased by the same decision: inserted leased


# Actions that change only their own execution's rows (its tasks, its timers): those of several appends
# in one transaction may run in one statement per kind, in any order across the appends.
_OWN_ROWS_ONLY = frozenset({ScheduleTask, LeaseTask, DeleteTask, CancelTask, StartTimer, CancelTimer})


class _Deferred:
    """The actions of a batch's appends, run together after every append's own statements.

    A statement per action kind per append was most of the store thread's calls on the hot path (a
    step deletes its task, inserts the next one leased and records its start): gathered, each runs
    once a batch (`SqlEventStore._run_deferred`). ``waves[i]`` holds each append's i-th group of its
    actions, so one append's groups still run in its order; rows are keyed by their statement and
    their keys (an executemany binds one shape).
    """

    __slots__ = ("starts", "waves")

    def __init__(self) -> None:
        self.waves: list[dict[tuple[int, tuple[str, ...]], tuple[Any, list[dict[str, Any]]]]] = []
        self.starts: list[dict[str, Any]] = []  # each lease's task_starts row, after every wave

    def add(self, wave: int, statement: Any, rows: list[dict[str, Any]]) -> None:
        while len(self.waves) <= wave:
            self.waves.append({})
        key = (id(statement), tuple(rows[0]))
        found = self.waves[wave].get(key)
        if found is None:
            self.waves[wave][key] = (statement, rows)
        else:
            found[1].extend(rows)


class SqlEventStore(SqlSchedules, SqlShards, SqlFlowControl, SqlListing, EventStore):
    """The whole contract in portable SQLAlchemy Core; see `SqliteEventStore`, `PostgresEventStore`."""

    def __init__(
        self,
        engine: Engine,
        *,
        label: str,
        read_options: dict[str, Any] | None = None,
        write_options: dict[str, Any] | None = None,
        transactions: DriverTransactions | None = None,
    ) -> None:
        # Two views of one connection pool: reads and writes may need to begin differently.
        self.label = label  # names the database in errors (a path, or a URL without its password)
        self._engine = engine
        self._read_engine = engine.execution_options(**read_options) if read_options else engine
        self._write_engine = engine.execution_options(**write_options) if write_options else engine
        self._build_statements()
        self._schedule_statements()
        self._shard_statements()
        self._writer = HeldWriter(
            engine, transactions=transactions or DriverTransactions(), translate=self._store_error
        )
        self._prepared = PreparedStatements()  # the append's statements, run on the driver (store/prepared.py)
        self._multirow: MultiRow | None = None  # SQLite's: a batch's rows in few statements (store/multirow.py)
        self._events_format = 0  # the newest event format recorded as written (0: not read yet)
        self._schema_version = 0  # what `migrate` left; tools that open a store without it skip newer tables

    # -- what differs per database ----------------------------------------------------------------
    @abc.abstractmethod
    def _insert_or_ignore(self, table: Table) -> Insert:
        """An INSERT that does nothing when the primary key already exists."""

    @abc.abstractmethod
    def _insert_or_replace(self, table: Table, key: str) -> Insert:
        """An INSERT that overwrites the other columns when `key` already exists."""

    @abc.abstractmethod
    def _lock_migrations(self, conn: Connection) -> None:
        """Serialise concurrent `migrate()` calls for the rest of `conn`'s transaction."""

    def _batched(self, conn: Connection) -> AbstractContextManager[object]:
        """Around statements whose results (rows, rowcount) nobody reads, so they may go out in one round trip."""
        return contextlib.nullcontext()

    # -- statements, built once --------------------------------------------------------------------
    def _build_statements(self) -> None:
        # INSERTs and UPDATEs without explicit values take their columns from the keys bound at
        # execution; WHERE parameters are named b_* so they never collide with those columns.
        w, x, e, t, tm, d = (
            schema.workflows,
            schema.executions,
            schema.events,
            schema.tasks,
            schema.timers,
            schema.dead_letters,
        )
        sc = schema.store_compatibility
        self._select_events_format = select(sc.c.version).where(sc.c.name == "events")
        self._raise_events_format = (
            update(sc)
            .where(sc.c.name == "events", sc.c.version < bindparam("b_version"))
            .values(version=bindparam("b_version"))
        )
        self._workflow_columns = _columns(w, WorkflowRow)
        self._execution_columns = _columns(x, ExecutionRow)
        self._task_columns = _columns(t, TaskRow)
        self._dead_letter_columns = _columns(d, DeadLetterRow)

        # RETURNING tells whether the row was inserted: rowcount is not portable for INSERT.
        self._insert_workflow = self._insert_or_ignore(w).returning(w.c.name)
        self._select_workflow_for_update = (
            select(*self._workflow_columns).where(w.c.name == bindparam("b_name")).with_for_update()
        )
        self._select_workflow = select(*self._workflow_columns).where(w.c.name == bindparam("b_name"))
        self._update_workflow = update(w).where(w.c.name == bindparam("b_name"))

        self._insert_execution = self._insert_or_ignore(x).returning(x.c.execution_id)
        self._insert_labels = insert(schema.execution_labels)
        rx = schema.retired_executions
        self._select_retired_id = select(rx.c.execution_id).where(rx.c.execution_id == bindparam("b_execution_id"))
        self._select_taken_ids = union_all(
            select(x.c.execution_id).where(x.c.execution_id.in_(bindparam("b_ids", expanding=True))),
            select(rx.c.execution_id).where(rx.c.execution_id.in_(bindparam("b_ids", expanding=True))),
        )
        self._advance_execution = (
            update(x)
            .where(x.c.execution_id == bindparam("b_execution_id"), x.c.last_seq == bindparam("b_expected_seq"))
            .returning(x.c.workflow)
        )
        self._advance_sharded_execution = self._advance_execution.returning(x.c.shard)  # with a fence: its shard too
        self._select_last_seq = select(x.c.last_seq).where(x.c.execution_id == bindparam("b_execution_id"))
        self._select_execution = select(*self._execution_columns).where(x.c.execution_id == bindparam("b_execution_id"))
        self._active_execution_ids = (
            select(x.c.execution_id).where(x.c.phase.not_in(_TERMINAL_PHASES)).order_by(x.c.created_at_ms)
        )
        # The same reads of some shards only: joined to the execution row, whose shard says.
        in_shards = x.c.shard.in_(bindparam("b_shards", expanding=True))
        self._active_execution_ids_of = self._active_execution_ids.where(in_shards)
        self._insert_events = insert(e)
        self._select_history = (
            select(e.c.seq, e.c.at_ms, e.c.kind, e.c.data)
            .where(e.c.execution_id == bindparam("b_execution_id"), e.c.seq > bindparam("b_after_seq"))
            .order_by(e.c.seq)
        )

        self._insert_task = insert(t)
        self._lease_task = update(t).where(t.c.token == bindparam("b_token")).values(state="leased")
        self._delete_task = delete(t).where(t.c.token == bindparam("b_token"))
        self._delete_queued_task = delete(t).where(t.c.token == bindparam("b_token"), t.c.state == "queued")
        self._flag_leased_task = (
            update(t).where(t.c.token == bindparam("b_token"), t.c.state == "leased").values(cancel_requested=True)
        )
        self._extend_lease = (
            update(t)
            .where(t.c.token == bindparam("b_token"), t.c.state == "leased", t.c.worker_id == bindparam("b_worker_id"))
            .returning(*self._task_columns)
        )
        self._select_task = select(*self._task_columns).where(t.c.token == bindparam("b_token"))
        self._select_tasks = select(*self._task_columns).order_by(t.c.visible_at_ms, t.c.token)
        self._select_tasks_of = self._select_tasks.join_from(t, x, t.c.execution_id == x.c.execution_id).where(
            in_shards
        )

        q, ts = schema.task_queues, schema.task_starts
        self._task_queue_columns = _columns(q, TaskQueueRow)
        self._upsert_task_queue = self._insert_or_replace(q, "name")
        self._select_task_queues = select(*self._task_queue_columns).order_by(q.c.name)
        limited = or_(
            t.c.key_rate_count.is_not(None),
            exists().where(q.c.name == t.c.task_queue, q.c.rate_count.is_not(None)),
        )
        now = bindparam("b_now_ms", type_=BigInteger)
        queue_period = func.coalesce(
            select(q.c.rate_period_ms).where(q.c.name == t.c.task_queue).scalar_subquery(), literal(0, BigInteger)
        )
        key_period = func.coalesce(t.c.key_rate_period_ms, literal(0, BigInteger))
        self._record_start = insert(ts).from_select(
            ["token", "task_queue", "flow_key", "started_at_ms", "expires_at_ms"],
            select(
                t.c.token,
                t.c.task_queue,
                case((t.c.key_rate_count.is_not(None), t.c.flow_key), else_=None),  # a key's window counts it
                now,
                now + case((key_period > queue_period, key_period), else_=queue_period),
            ).where(t.c.token == bindparam("b_token"), t.c.state == "leased", limited),
        )
        self._record_start_returning = self._record_start.returning(ts.c.token)
        self._select_limited_leases = select(t.c.token).where(
            t.c.token.in_(bindparam("b_tokens", expanding=True)), t.c.state == "leased", limited
        )
        # Engines that split the shards share each queue's window through the store (`_check_shared_windows`).
        self._select_lease_limits = (
            select(
                t.c.task_queue,
                q.c.rate_count,
                q.c.rate_period_ms,
                t.c.flow_key,
                t.c.key_rate_count,
                t.c.key_rate_period_ms,
            )
            .select_from(t.outerjoin(q, q.c.name == t.c.task_queue))
            .where(t.c.token == bindparam("b_token"))
        )
        self._select_window_starts = {
            kind: select(ts.c.started_at_ms)
            .where(column == bindparam("b_name"), ts.c.started_at_ms > bindparam("b_after_ms"))
            .order_by(ts.c.started_at_ms.desc())
            .limit(bindparam("b_limit"))
            for kind, column in (("queue", ts.c.task_queue), ("key", ts.c.flow_key))
        }
        self._select_starts = (
            select(*_columns(ts, TaskStartRow))
            .where(ts.c.expires_at_ms > bindparam("b_now_ms"))
            .order_by(ts.c.started_at_ms)
        )
        self._prune_starts = delete(ts).where(ts.c.expires_at_ms <= bindparam("b_now_ms"))

        self._upsert_timer = self._insert_or_replace(tm, "timer_id")
        self._delete_timer = delete(tm).where(tm.c.timer_id == bindparam("b_timer_id"))
        self._due_timers = (
            select(tm.c.timer_id, tm.c.execution_id, tm.c.fire_at_ms)
            .where(tm.c.fire_at_ms <= bindparam("b_until_ms"))
            .order_by(tm.c.fire_at_ms, tm.c.timer_id)
            .limit(bindparam("b_limit"))
        )
        self._due_timers_of = self._due_timers.join_from(tm, x, tm.c.execution_id == x.c.execution_id).where(in_shards)

        self._insert_dead_letter = insert(d)
        self._resolve_dead_letter = update(d).where(d.c.dead_letter_id == bindparam("b_dead_letter_id"))
        x = schema.executions
        self._replace_spec = update(x).where(x.c.execution_id == bindparam("b_execution_id"))
        self._select_dead_letter = select(*self._dead_letter_columns).where(
            d.c.dead_letter_id == bindparam("b_dead_letter_id")
        )

        o, r = schema.outbox, schema.execution_runs
        self._insert_message = self._insert_or_ignore(o)
        self._delete_message = delete(o).where(o.c.message_id == bindparam("b_message_id"))
        self._pending_messages = (
            select(o.c.message_id, o.c.execution_id, o.c.kind, o.c.body, o.c.created_at_ms)
            .order_by(o.c.created_at_ms, o.c.message_id)
            .limit(bindparam("b_limit"))
        )
        self._pending_messages_of = self._pending_messages.join_from(o, x, o.c.execution_id == x.c.execution_id).where(
            in_shards
        )
        self._insert_run = insert(r)
        self._latest_run = (
            select(r.c.execution_id)
            .where(r.c.first_run_id == bindparam("b_first_run_id"))
            .order_by(r.c.run.desc())
            .limit(1)
        )

        fs = schema.flow_slots
        self._wait_for_slot = self._insert_or_replace(fs, "execution_id")
        self._admit_slot = update(fs).where(fs.c.execution_id == bindparam("b_execution_id")).values(running=True)
        # On a split, an admission is checked against every engine's running slots of its key.
        self._select_slot_line = select(fs.c.workflow, fs.c.flow_key, fs.c.slot_limit).where(
            fs.c.execution_id == bindparam("b_execution_id")
        )
        self._count_running_slots = select(func.count()).where(
            fs.c.workflow == bindparam("b_workflow"), fs.c.flow_key == bindparam("b_flow_key"), fs.c.running
        )
        self._free_slot = delete(fs).where(fs.c.execution_id == bindparam("b_execution_id"))

        # Each action kind: (statements to run, how to bind one action). Consecutive actions of
        # one kind run as a single executemany per statement, which keeps their order.
        self._action_handlers: dict[type, tuple[tuple[Any, ...], _ActionParams]] = {
            ScheduleTask: ((self._insert_task,), _schedule_params),
            LeaseTask: ((self._lease_task,), _lease_params),
            DeleteTask: ((self._delete_task,), _token_params),
            CancelTask: ((self._delete_queued_task, self._flag_leased_task), _token_params),
            StartTimer: ((self._upsert_timer,), _timer_params),
            CancelTimer: ((self._delete_timer,), _timer_id_params),
            AddDeadLetter: ((self._insert_dead_letter,), _dead_letter_params),
            ResolveDeadLetter: ((self._resolve_dead_letter,), _resolve_params),
            ReplaceSpec: ((self._replace_spec,), _spec_params),
            SendMessage: ((self._insert_message,), _message_params),
            WaitForFlowSlot: ((self._wait_for_slot,), _wait_for_slot_params),
            AdmitFlowSlot: ((self._admit_slot,), _execution_params),
            FreeFlowSlot: ((self._free_slot,), _execution_params),
        }

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with _translate_errors(self.label), self._read_engine.connect() as conn:
            yield conn

    def _write(self) -> AbstractContextManager[Connection]:
        """A transaction; its commit (on leaving) is inside the translation of connection errors too.

        On the connection the store holds for its writes (store/held.py); when another write has it
        (another thread, or a write inside a write), on one from the pool.
        """
        writer = self._writer
        if writer.try_acquire():
            return writer
        return self._pooled_write()

    @contextlib.contextmanager
    def _pooled_write(self) -> Iterator[Connection]:
        with _translate_errors(self.label), self._write_engine.begin() as conn:
            yield conn

    # -- lifecycle ----------------------------------------------------------------------------------
    def migrate(self) -> int:
        version = self._schema_version = apply_migrations(self._write, self._lock_migrations)
        with self._read() as conn:
            self._events_format = int(conn.execute(self._select_events_format).scalar() or 0)
        self._shards = 0
        self.shard_count()  # read now, not first inside an append's transaction
        return version

    def close(self) -> None:
        self._writer.close()
        self._engine.dispose()

    def _store_error(self, error: BaseException) -> BaseException:
        return store_error(self.label, error)

    # -- workflows ----------------------------------------------------------------------------------
    def put_workflow(self, name: str, spec: dict[str, JSON], *, now_ms: int) -> WorkflowRow:
        # Compare as stored (after a JSON round trip), so re-putting an equal spec is a no-op.
        stored_spec = json.loads(dumps_json(spec))
        with self._write() as conn:
            created = conn.execute(
                self._insert_workflow,
                {"name": name, "spec": spec, "version": 1, "created_at_ms": now_ms, "updated_at_ms": now_ms},
            ).first()
            if created is not None:
                return WorkflowRow(name, stored_spec, 1, now_ms, now_ms)
            current = WorkflowRow(*conn.execute(self._select_workflow_for_update, {"b_name": name}).one())
            if current.spec == stored_spec:
                return current
            version = current.version + 1
            conn.execute(
                self._update_workflow,
                {"b_name": name, "spec": spec, "version": version, "updated_at_ms": now_ms},
            )
            return WorkflowRow(name, stored_spec, version, current.created_at_ms, now_ms)

    def get_workflow(self, name: str) -> WorkflowRow | None:
        with self._read() as conn:
            row = conn.execute(self._select_workflow, {"b_name": name}).first()
        return None if row is None else WorkflowRow(*row)

    def list_workflows(self) -> list[WorkflowRow]:
        with self._read() as conn:
            rows = conn.execute(select(*self._workflow_columns).order_by(schema.workflows.c.name)).all()
        return [WorkflowRow(*r) for r in rows]

    # -- executions and their history ------------------------------------------------------------------
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
        request = AppendRequest(execution_id, expected_seq, events, actions, summary, new_execution)
        event_rows: list[dict[str, Any]] = []
        with self._write() as conn:
            standing = self._standing_shards(conn)
            self._append_on(conn, request, event_rows, standing)
            self._insert_event_rows(conn, event_rows)
            recorded = self._record_events_format(conn, [request])
        self._events_format = max(self._events_format, recorded)

    def append_batch(self, requests: Sequence[AppendRequest]) -> list[Exception | None]:
        """One transaction for the whole batch; if any request fails, each is retried on its own.

        Failures are rare (a conflict means another writer, a caller bug is a bug), so the
        common case pays one BEGIN/COMMIT for many decisions.
        """
        if len(requests) > 1:
            try:
                event_rows: list[dict[str, Any]] = []
                # On a split each lease's start is checked against the shared windows as it is recorded.
                deferred = _Deferred() if self._fence is None else None
                with self._write() as conn:
                    standing = self._standing_shards(conn)
                    written = self._write_rows_together(conn, requests)
                    for request in requests:
                        self._append_on(conn, request, event_rows, standing, deferred, written=written)
                    if deferred is not None:
                        self._run_deferred(conn, deferred)
                    self._insert_event_rows(conn, event_rows)
                    recorded = self._record_events_format(conn, requests)
            except Exception:
                pass  # rolled back; isolate the failing request below
            else:
                self._events_format = max(self._events_format, recorded)
                return [None] * len(requests)
        return super().append_batch(requests)

    def _record_events_format(self, conn: Connection, requests: Sequence[AppendRequest]) -> int:
        """Record, in the append's transaction, that the histories now hold events of a newer format
        than the store says (an engine that reads less then refuses the store); 0 when nothing new.
        Only a store this process migrated knows the recorded format (the engine's always does)."""
        if not self._events_format:
            return 0
        newest = max((r.event.format_version() for request in requests for r in request.events), default=0)
        if newest <= self._events_format:
            return 0
        conn.execute(self._raise_events_format, {"b_version": newest})
        return newest

    def _write_rows_together(self, conn: Connection, requests: Sequence[AppendRequest]) -> frozenset[str]:
        """SQLite: the executions' own rows of the batch in a few statements (store/multirow.py); the
        executions written. An execution with two appends in the batch, an advance the caller gave no
        workflow for, or a start whose id is taken (or retired), is written by its own append, as
        before, which names what is wrong."""
        multirow = self._multirow
        if multirow is None or self._fence is not None or self._schema_version < _SHARDS_SINCE:
            return frozenset()
        appends = Counter(request.execution_id for request in requests)
        alone = [request for request in requests if appends[request.execution_id] == 1]
        advanced = self._advance_all(conn, multirow, [r for r in alone if r.new_execution is None and r.workflow])
        return advanced | self._insert_all(conn, multirow, [r for r in alone if r.new_execution is not None])

    def _advance_all(self, conn: Connection, multirow: MultiRow, requests: list[AppendRequest]) -> frozenset[str]:
        """The guarded UPDATEs of ``requests``' rows. Each must be where its append expects it (its seq,
        its workflow): else `ConcurrencyConflict`, and the batch is retried append by append."""
        rows = [
            (request.execution_id, request.expected_seq, request.workflow, self._index_row(request))
            for request in requests
            if request.workflow is not None
        ]
        changed = sum(run_sql(conn, sql, values) for sql, values in multirow.advance(rows))
        if changed != len(rows):
            raise ConcurrencyConflict(f"{len(rows) - changed} of {len(rows)} executions moved on since their decision")
        return frozenset(row[0] for row in rows)

    def _insert_all(self, conn: Connection, multirow: MultiRow, requests: list[AppendRequest]) -> frozenset[str]:
        """The rows of ``requests``' new executions (and their labels and runs) but those whose id is
        taken or retired: their own appends refuse them."""
        if not requests:
            return frozenset()
        taken = self._taken_ids(conn, [request.execution_id for request in requests])
        rows, labels, runs = [], [], []
        for request in requests:
            new_execution = request.new_execution
            if request.execution_id in taken or new_execution is None or request.expected_seq != 0:
                continue
            rows.append(self._new_row(request, new_execution))
            labels += label_rows(request.execution_id, new_execution.labels)
            if new_execution.chain is not None:
                first_run_id, run = new_execution.chain
                runs.append({"first_run_id": first_run_id, "run": run, "execution_id": request.execution_id})
        for table, table_rows in (
            (schema.executions, rows),
            (schema.execution_labels, labels),
            (schema.execution_runs, runs),
        ):
            if table_rows:
                for sql, values in multirow.insert_rows(table, table_rows):
                    run_sql(conn, sql, values)
        return frozenset(row["execution_id"] for row in rows)

    def _taken_ids(self, conn: Connection, ids: list[str]) -> set[str]:
        """Which of ``ids`` an execution has, or had (retired)."""
        return _found(conn, self._select_taken_ids, "b_ids", ids)

    def _index_row(self, request: AppendRequest) -> dict[str, Any]:
        """What an append writes into its execution's row."""
        summary = request.summary
        return {
            "last_seq": request.expected_seq + len(request.events),
            "phase": str(summary.phase),
            "current_steps": list(summary.current_steps),
            "output": summary.output,
            "error": summary.error,
            "wake_at_ms": summary.wake_at_ms,
            "updated_at_ms": summary.updated_at_ms,
        }

    def _new_row(self, request: AppendRequest, new_execution: NewExecution) -> dict[str, Any]:
        """A new execution's row, as its first append writes it."""
        row = self._index_row(request)
        row.update(
            execution_id=request.execution_id,
            workflow=new_execution.workflow,
            spec=new_execution.spec,
            spec_hash=new_execution.spec_hash,
            input=new_execution.input,
            created_at_ms=request.summary.updated_at_ms,
        )
        if self._schema_version >= _SHARDS_SINCE:
            row["shard"] = self.placed_shard(request.execution_id, new_execution.shard)
        return row

    def _insert_event_rows(self, conn: Connection, event_rows: list[dict[str, Any]]) -> None:
        """All the batch's events in one executemany (SQLite: a few statements of many rows each):
        nothing else in the transaction reads them."""
        if not event_rows:
            return
        if self._multirow is not None:
            for sql, values in self._multirow.insert_rows(schema.events, event_rows):
                run_sql(conn, sql, values)
            return
        with self._batched(conn):
            self._prepared.executemany(conn, self._insert_events, event_rows)

    def _append_on(
        self,
        conn: Connection,
        request: AppendRequest,
        event_rows: list[dict[str, Any]],
        standing: Collection[int] | None,
        deferred: _Deferred | None = None,
        *,
        written: Collection[str] = (),
    ) -> None:
        """Everything of one append but its events, which go to `event_rows` for one insert per batch.

        ``standing``: the shards whose writes may land (`SqlShards._standing_shards`); None: all.
        ``deferred``: where actions that change only this execution's rows go, to run with the
        batch's others (`_run_deferred`); None: they run here.
        ``written``: the executions whose own rows the batch wrote already (`_write_rows_together`).
        """
        execution_id, expected_seq, events = request.execution_id, request.expected_seq, request.events
        new_execution = request.new_execution
        # Caller bugs are refused before touching the database; seqs are the engine's to assign.
        if new_execution is not None and expected_seq != 0:
            raise ValueError(f"a new execution starts at seq 0, not {expected_seq}")
        for offset, recorded in enumerate(events, start=1):
            if recorded.seq != expected_seq + offset:
                raise ValueError(
                    f"event {offset} of the append to {execution_id} has seq {recorded.seq}, "
                    f"expected {expected_seq + offset}"
                )
            event = recorded.event
            event_rows.append(
                {
                    "execution_id": execution_id,
                    "seq": recorded.seq,
                    "kind": event.kind,
                    "at_ms": recorded.at_ms,
                    "data": event.to_data(),
                }
            )
        if execution_id in written:  # its row was written with the batch's others (`_write_rows_together`)
            workflow = request.workflow if new_execution is None else new_execution.workflow
            assert workflow is not None  # advanced only when the caller gave it
            self._after_advance(conn, request, workflow, deferred)
            return
        if new_execution is None:
            index_row = self._index_row(request)
            returned = self._prepared.first(
                conn,
                self._advance_execution if standing is None else self._advance_sharded_execution,
                {"b_execution_id": execution_id, "b_expected_seq": expected_seq, **index_row},
            )
            workflow = None if returned is None else returned[0]
            if workflow is None:
                raise self._conflict(conn, execution_id, expected_seq)
            if standing is not None:
                self._check_owned(standing, execution_id, returned[1])
        else:
            workflow = new_execution.workflow
            index_row = self._new_row(request, new_execution)
            if self._schema_version >= _SHARDS_SINCE:
                self._check_owned(standing, execution_id, index_row["shard"])
            # On the driver too (store/prepared.py): every execution starts with this append.
            prepared = self._prepared
            if self._schema_version >= _RETIRED_SINCE and prepared.first(
                conn, self._select_retired_id, {"b_execution_id": execution_id}
            ):
                raise ExecutionRetired(f"execution {execution_id!r} ran and was removed by the retention period")
            if prepared.first(conn, self._insert_execution, index_row) is None:
                raise ExecutionExists(f"execution {execution_id!r} already exists")
            if new_execution.labels:
                prepared.executemany(conn, self._insert_labels, label_rows(execution_id, new_execution.labels))
            if new_execution.chain is not None:
                first_run_id, run = new_execution.chain
                prepared.executemany(
                    conn, self._insert_run, [{"first_run_id": first_run_id, "run": run, "execution_id": execution_id}]
                )
        self._after_advance(conn, request, workflow, deferred)

    def _after_advance(
        self, conn: Connection, request: AppendRequest, workflow: str, deferred: _Deferred | None
    ) -> None:
        """An append's actions, once its execution's row is where the append leaves it."""
        if request.actions:
            actions, leases = _fold_leases(request.actions)
            context = _AppendContext(request.execution_id, workflow, request.summary.updated_at_ms, leases)
            if deferred is not None and all(type(action) in _OWN_ROWS_ONLY for action in actions):
                self._defer_actions(actions, context, deferred)
                return
            with self._batched(conn):
                self._apply_actions(conn, actions, context)

    def _conflict(self, conn: Connection, execution_id: str, expected_seq: int) -> ConcurrencyConflict:
        last_seq = conn.execute(self._select_last_seq, {"b_execution_id": execution_id}).scalar()
        if last_seq is None:
            return ConcurrencyConflict(f"execution {execution_id!r} does not exist")
        return ConcurrencyConflict(f"execution {execution_id!r} is at seq {last_seq}, not {expected_seq}")

    def _apply_actions(self, conn: Connection, actions: Iterable[Action], context: _AppendContext) -> None:
        actions = list(actions)
        for kind, group in groupby(actions, key=type):
            statements, params = self._action_handlers[kind]
            rows = [params(action, context) for action in group]
            for statement in statements:
                self._prepared.executemany(conn, statement, rows)
        if self._fence is not None and any(isinstance(a, AdmitFlowSlot) for a in actions):
            self._check_shared_slots(conn, context.execution_id)
        self._record_starts(conn, actions, context)

    def _check_shared_slots(self, conn: Connection, execution_id: str) -> None:
        """Refuse the append (`FlowSlotTaken`) if the execution's admission takes its key past its limit,
        counting the slots every engine of the split admitted. The key's line is locked for the rest of
        the transaction, as a rate window is (`_lock_rate_window`): two engines admitting at once are
        counted one after the other, each seeing the other's committed admission."""
        prepared = self._prepared
        found = prepared.first(conn, self._select_slot_line, {"b_execution_id": execution_id})
        if found is None:
            return
        workflow, key, limit = found
        self._lock_rate_window(conn, f"slots:{workflow} {key}")
        (running,) = prepared.first(conn, self._count_running_slots, {"b_workflow": workflow, "b_flow_key": key})
        if int(running) > int(limit):
            raise FlowSlotTaken(workflow, key, limit=int(limit))

    def _defer_actions(self, actions: Sequence[Action], context: _AppendContext, deferred: _Deferred) -> None:
        """`_apply_actions`, but into ``deferred``: the same rows, in the same order for this append."""
        wave = 0
        for kind, group in groupby(actions, key=type):
            statements, params = self._action_handlers[kind]
            rows = [params(action, context) for action in group]
            for offset, statement in enumerate(statements):  # CancelTask's two, still in order
                deferred.add(wave, statement, rows if offset == 0 else list(rows))
                wave += 1
        leased = [a.token for a in actions if isinstance(a, LeaseTask)] + list(context.leases)
        deferred.starts.extend({"b_token": token, "b_now_ms": context.now_ms} for token in leased)

    def _run_deferred(self, conn: Connection, deferred: _Deferred) -> None:
        """The batch's gathered actions: one statement per kind and wave, then the starts of its leases.

        SQLite: each kind's rows in few statements (store/multirow.py), and a start only for the
        leases a rate limit counts, found by one query (each start's statement inserts nothing for
        the others, but still costs a hand-off of the GIL)."""
        multirow = self._multirow
        with self._batched(conn):
            for wave in deferred.waves:
                for statement, rows in wave.values():
                    several = None if multirow is None else multirow.statements(statement, rows)
                    if several is None:
                        self._prepared.executemany(conn, statement, rows)
                        continue
                    for sql, values in several:
                        run_sql(conn, sql, values)
            starts = deferred.starts
            if multirow is not None and starts:
                limited = self._limited_leases(conn, [start["b_token"] for start in starts])
                starts = [start for start in starts if start["b_token"] in limited]
            self._prepared.executemany(conn, self._record_start, starts)

    def _limited_leases(self, conn: Connection, tokens: list[str]) -> set[str]:
        """Which of the leased ``tokens`` a rate limit counts (their starts are recorded)."""
        return _found(conn, self._select_limited_leases, "b_tokens", tokens)

    def _record_starts(self, conn: Connection, actions: Sequence[Action], context: _AppendContext) -> None:
        """Each task this decision leased that a rate limit counts: its start, at the decision's time.

        After the actions, so each task row already says leased (one lease and its start, one
        transaction: a restarted engine rebuilds its rate windows from these rows).
        """
        leased = [a.token for a in actions if isinstance(a, LeaseTask)] + list(context.leases)
        if not leased:
            return
        rows = [{"b_token": token, "b_now_ms": context.now_ms} for token in leased]
        if self._fence is None:
            self._prepared.executemany(conn, self._record_start, rows)
            return
        # Engines split the shards: each window is the store's. Only the starts recorded (the leases a
        # limit counts) are checked, so a lease no limit counts costs nothing more.
        recorded = [found[0] for row in rows for found in self._prepared.all(conn, self._record_start_returning, row)]
        if recorded:
            self._check_shared_windows(conn, recorded, context.now_ms)

    def _check_shared_windows(self, conn: Connection, recorded: Sequence[str], now_ms: int) -> None:
        """Refuse the append (`RateLimitReached`) if a rate-limited queue's window (or a workflow's flow
        key's) holds more than its count of starts after ``now_ms`` minus its period, every engine's and
        those just ``recorded`` here counted.

        Each engine's dispatcher counts only its own starts, so with engines that split the shards the
        store decides. The window is locked for the rest of the transaction (`_lock_rate_window`), so
        two engines' leases are counted one after the other: a start committed while this one was
        being decided is seen here, and this one by the next, whichever decision read the earlier time
        (every start after ``now_ms`` minus the period counts, later ones too).
        """
        windows: dict[tuple[str, str], tuple[int, int]] = {}  # (kind, name) -> (count, period); "queue" or "key"
        prepared = self._prepared  # on the driver: inside psycopg's pipeline as the rest of the append
        for token in recorded:  # one, nearly always: a rate-limited task is leased by a decision of its own
            found = prepared.first(conn, self._select_lease_limits, {"b_token": token})
            if found is None:
                continue
            queue, queue_count, queue_period, key, key_count, key_period = found
            if queue_count is not None:
                windows[("queue", queue)] = (queue_count, queue_period)
            if key is not None and key_count is not None:
                windows[("key", key)] = (key_count, key_period)
        for kind, name in sorted(windows):  # one order of locks within an append
            count, period = windows[(kind, name)]
            self._lock_rate_window(conn, f"{kind}:{name}")
            bounds = {"b_name": name, "b_after_ms": now_ms - period, "b_limit": count + 1}
            recent = [int(started) for (started,) in prepared.all(conn, self._select_window_starts[kind], bounds)]
            if len(recent) > count:  # room again once the start `count` places back (newest first) leaves
                raise RateLimitReached(
                    name if kind == "queue" else None,
                    key=name if kind == "key" else None,
                    frees_at_ms=max(recent[count] + period, now_ms + 1),
                )

    def _lock_rate_window(self, conn: Connection, window: str) -> None:
        """Hold a window (``queue:<name>``, ``key:<name>``) until the transaction ends (SQLite has one
        writer at a time already)."""

    def get_execution(self, execution_id: str) -> ExecutionRow | None:
        with self._read() as conn:
            row = conn.execute(self._select_execution, {"b_execution_id": execution_id}).first()
        return None if row is None else ExecutionRow(*row)

    # -- retention ------------------------------------------------------------------------------------
    def finished_before(self, cutoff_ms: int, *, limit: int) -> list[str]:
        x = schema.executions
        query = (
            select(x.c.execution_id)
            .where(x.c.updated_at_ms < cutoff_ms, x.c.phase.in_(_TERMINAL_PHASES))
            .order_by(x.c.updated_at_ms, x.c.execution_id)
            .limit(limit)
        )
        with self._read() as conn:
            return list(conn.scalars(query))

    def retire(self, execution_id: str, *, retired_at_ms: int, export: str | None) -> RetiredExecution | None:
        x, r = schema.executions, schema.retired_executions
        with self._write() as conn:
            row = conn.execute(
                select(x.c.workflow, x.c.phase, x.c.updated_at_ms).where(x.c.execution_id == execution_id)
            ).first()
            if row is None or row.phase not in _TERMINAL_PHASES:
                return None
            for table in (
                schema.events,
                schema.tasks,
                schema.timers,
                schema.dead_letters,
                schema.outbox,
                schema.execution_runs,
                *((schema.execution_labels,) if self._schema_version >= _LABELS_SINCE else ()),
            ):
                conn.execute(delete(table).where(table.c.execution_id == execution_id))
            conn.execute(delete(x).where(x.c.execution_id == execution_id))
            retired = RetiredExecution(execution_id, row.workflow, row.phase, row.updated_at_ms, retired_at_ms, export)
            conn.execute(self._insert_or_replace(r, "execution_id").values(**_retired_values(retired)))
        return retired

    def get_retired(self, execution_id: str) -> RetiredExecution | None:
        r = schema.retired_executions
        with self._read() as conn:
            row = conn.execute(
                select(
                    r.c.execution_id, r.c.workflow, r.c.phase, r.c.finished_at_ms, r.c.retired_at_ms, r.c.export
                ).where(r.c.execution_id == execution_id)
            ).first()
        return None if row is None else RetiredExecution(*row)

    def load_execution(self, execution_id: str) -> tuple[ExecutionRow, list[RecordedEvent]] | None:
        with self._read() as conn:
            row = conn.execute(self._select_execution, {"b_execution_id": execution_id}).first()
            if row is None:
                return None
            events = conn.execute(self._select_history, {"b_execution_id": execution_id, "b_after_seq": 0}).all()
        history = [RecordedEvent(seq, at_ms, event_from_record(kind, data)) for seq, at_ms, kind, data in events]
        return ExecutionRow(*row), history

    def load_executions(self, execution_ids: Sequence[str]) -> dict[str, tuple[ExecutionRow, list[RecordedEvent]]]:
        x, e = schema.executions, schema.events
        found: dict[str, tuple[ExecutionRow, list[RecordedEvent]]] = {}
        with self._read() as conn:  # rows first, then their histories, as in load_execution
            for start in range(0, len(execution_ids), _LOAD_CHUNK):  # bound the statement's parameters
                chunk = list(dict.fromkeys(execution_ids[start : start + _LOAD_CHUNK]))
                for r in conn.execute(select(*self._execution_columns).where(x.c.execution_id.in_(chunk))):
                    found[r.execution_id] = (ExecutionRow(*r), [])
                events = conn.execute(
                    select(e.c.execution_id, e.c.seq, e.c.at_ms, e.c.kind, e.c.data)
                    .where(e.c.execution_id.in_(chunk))
                    .order_by(e.c.execution_id, e.c.seq)
                )
                for execution_id, seq, at_ms, kind, data in events:
                    loaded = found.get(execution_id)
                    if loaded is not None:
                        loaded[1].append(RecordedEvent(seq, at_ms, event_from_record(kind, data)))
        return found

    def list_executions(
        self, *, workflow: str | None = None, phase: str | None = None, limit: int = 100
    ) -> list[ExecutionRow]:
        x = schema.executions
        query = select(*self._execution_columns)
        if workflow is not None:
            query = query.where(x.c.workflow == workflow)
        if phase is not None:
            query = query.where(x.c.phase == str(phase))
        query = query.order_by(x.c.created_at_ms.desc(), x.c.execution_id.desc()).limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [ExecutionRow(*r) for r in rows]

    def active_execution_ids(self, *, shards: Collection[int] | None = None) -> list[str]:
        shards = self._work_of(shards)
        with self._read() as conn:
            if shards is None:
                return list(conn.scalars(self._active_execution_ids))
            return list(conn.scalars(self._active_execution_ids_of, {"b_shards": sorted(shards)}))

    def load_history(self, execution_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[RecordedEvent]:
        query = self._select_history if limit is None else self._select_history.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query, {"b_execution_id": execution_id, "b_after_seq": after_seq}).all()
        return [RecordedEvent(seq, at_ms, event_from_record(kind, data)) for seq, at_ms, kind, data in rows]

    # -- tasks ------------------------------------------------------------------------------------------
    def load_tasks(self, *, state: str | None = None, shards: Collection[int] | None = None) -> list[TaskRow]:
        shards = self._work_of(shards)
        query = self._select_tasks if shards is None else self._select_tasks_of
        if state is not None:
            query = query.where(schema.tasks.c.state == state)
        with self._read() as conn:
            rows = conn.execute(query, {} if shards is None else {"b_shards": sorted(shards)}).all()
        return [TaskRow(*r) for r in rows]

    def list_task_queues(self) -> list[TaskQueueRow]:
        with self._read() as conn:
            return [TaskQueueRow(*r) for r in conn.execute(self._select_task_queues)]

    def put_task_queue(
        self, name: str, *, paused: bool, note: str, rate_limit: RateLimit | None, now_ms: int
    ) -> TaskQueueRow:
        row = TaskQueueRow(
            name,
            paused,
            note,
            None if rate_limit is None else rate_limit.count,
            None if rate_limit is None else rate_limit.period_ms,
            now_ms,
        )
        with self._write() as conn:
            conn.execute(self._upsert_task_queue, asdict(row))
        return row

    def live_task_starts(self, now_ms: int) -> list[TaskStartRow]:
        with self._read() as conn:
            return [TaskStartRow(*r) for r in conn.execute(self._select_starts, {"b_now_ms": now_ms})]

    def prune_task_starts(self, now_ms: int) -> int:
        with self._write() as conn:
            return conn.execute(self._prune_starts, {"b_now_ms": now_ms}).rowcount

    def get_task(self, token: str) -> TaskRow | None:
        with self._read() as conn:
            row = conn.execute(self._select_task, {"b_token": token}).first()
        return None if row is None else TaskRow(*row)

    def extend_lease(self, token: str, *, worker_id: str, lease_expires_at_ms: int, progress: JSON) -> TaskRow | None:
        with self._write() as conn:
            row = conn.execute(
                self._extend_lease,
                {
                    "b_token": token,
                    "b_worker_id": worker_id,
                    "lease_expires_at_ms": lease_expires_at_ms,
                    "progress": progress,
                },
            ).first()
        return None if row is None else TaskRow(*row)

    def delete_task(self, token: str) -> None:
        with self._write() as conn:
            conn.execute(self._delete_task, {"b_token": token})

    # -- timers and dead letters -------------------------------------------------------------------------
    def due_timers(self, *, until_ms: int, limit: int, shards: Collection[int] | None = None) -> list[TimerRow]:
        shards = self._work_of(shards)
        with self._read() as conn:
            if shards is None:
                rows = conn.execute(self._due_timers, {"b_until_ms": until_ms, "b_limit": limit}).all()
            else:
                bound = {"b_until_ms": until_ms, "b_limit": limit, "b_shards": sorted(shards)}
                rows = conn.execute(self._due_timers_of, bound).all()
        return [TimerRow(*r) for r in rows]

    def delete_timer(self, timer_id: str) -> None:
        with self._write() as conn:
            conn.execute(self._delete_timer, {"b_timer_id": timer_id})

    def list_dead_letters(
        self, *, execution_id: str | None = None, include_resolved: bool = False
    ) -> list[DeadLetterRow]:
        d = schema.dead_letters
        query = select(*self._dead_letter_columns)
        if execution_id is not None:
            query = query.where(d.c.execution_id == execution_id)
        if not include_resolved:
            query = query.where(d.c.resolved_at_ms.is_(None))
        query = query.order_by(d.c.created_at_ms, d.c.dead_letter_id)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [DeadLetterRow(*r) for r in rows]

    def get_dead_letter(self, dead_letter_id: str) -> DeadLetterRow | None:
        with self._read() as conn:
            row = conn.execute(self._select_dead_letter, {"b_dead_letter_id": dead_letter_id}).first()
        return None if row is None else DeadLetterRow(*row)

    # -- the outbox and continue-as-new chains --------------------------------------------------------
    def pending_messages(self, *, limit: int, shards: Collection[int] | None = None) -> list[MessageRow]:
        shards = self._work_of(shards)
        with self._read() as conn:
            if shards is None:
                rows = conn.execute(self._pending_messages, {"b_limit": limit}).all()
            else:
                rows = conn.execute(self._pending_messages_of, {"b_limit": limit, "b_shards": sorted(shards)}).all()
        messages = [
            MessageRow(message_id, execution_id, kind, body["target"], body["seq"], body["body"], created_at_ms)
            for message_id, execution_id, kind, body, created_at_ms in rows
        ]
        # One sender's messages in the order it sent them (a child's start before its cancel).
        return sorted(messages, key=lambda m: (m.created_at_ms, m.execution_id, m.seq, m.message_id))

    def delete_message(self, message_id: str) -> None:
        with self._write() as conn:
            conn.execute(self._delete_message, {"b_message_id": message_id})

    def latest_run(self, first_run_id: str) -> str | None:
        with self._read() as conn:
            latest: str | None = conn.execute(self._latest_run, {"b_first_run_id": first_run_id}).scalar()
        return latest


# -- binding one action to its statement's parameters ------------------------------------------------------
@contextlib.contextmanager
def _translate_errors(label: str) -> Iterator[None]:
    """Driver errors as the store's own, around a read or a pooled write (`store_error`)."""
    try:
        yield
    except DBAPIError as error:
        translated = store_error(label, error)
        if translated is error:
            raise
        raise translated from error


def store_error(label: str, error: BaseException) -> BaseException:
    """A driver error as the store's own: `StoreCorrupted` (permanent) or `StoreUnavailable` (retry);
    any other error as it is.

    Corruption is told apart first: SQLite reports some of it through OperationalError, and a
    damaged file answered as "unavailable" would have every caller retry forever. On
    `StoreUnavailable` SQLAlchemy has already invalidated the connection, so the next call gets
    a fresh one.
    """
    if not isinstance(error, DBAPIError):
        return error
    if is_corruption(error.orig):
        return StoreCorrupted(
            f"the database {label} is corrupt ({error.orig}): restore it from a backup; retrying cannot help"
        )
    if isinstance(error, OperationalError | InterfaceError):
        return StoreUnavailable(f"the database is unavailable: {error.orig or error}")
    if not error.connection_invalidated:
        return error
    return StoreUnavailable(f"the database dropped the connection: {error.orig or error}")


# SQLite's primary result codes for a damaged file (extended codes keep them in the low byte).
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
# PostgreSQL's SQLSTATEs for damaged data: data_corrupted, index_corrupted.
_PG_CORRUPTION_STATES = frozenset({"XX001", "XX002"})


def is_corruption(orig: BaseException | None) -> bool:
    """Whether a driver error says the database itself is damaged (not busy, not gone)."""
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return True
    return getattr(orig, "sqlstate", None) in _PG_CORRUPTION_STATES


def _fold_leases(actions: Sequence[Action]) -> tuple[Sequence[Action], dict[str, LeaseTask]]:
    """A task scheduled and leased in one decision (eager dispatch) is one INSERT, not INSERT + UPDATE."""
    scheduled = {a.token for a in actions if isinstance(a, ScheduleTask)}
    leases = {a.token: a for a in actions if isinstance(a, LeaseTask) and a.token in scheduled}
    if not leases:
        return actions, leases
    return [a for a in actions if not (isinstance(a, LeaseTask) and a.token in leases)], leases


def _schedule_params(a: ScheduleTask, c: _AppendContext) -> dict[str, Any]:
    lease = c.leases.get(a.token)
    if lease is not None:
        return {
            **_schedule_params(a, _AppendContext(c.execution_id, c.workflow, c.now_ms, {})),
            "state": "leased",
            "worker_id": lease.worker_id,
            "lease_expires_at_ms": lease.lease_expires_at_ms,
            "attempt_deadline_ms": lease.attempt_deadline_ms,
        }
    return {
        "token": a.token,
        "execution_id": c.execution_id,
        "step": a.step,
        "attempt": a.attempt,
        "poll": a.poll,
        "task_queue": a.task_queue,
        "arguments": a.arguments,
        "visible_at_ms": a.visible_at_ms,
        "timeout_ms": a.timeout_ms,
        "lease_ms": a.lease_ms,
        "heartbeat_required": a.heartbeat_required,
        "sticky_worker_id": a.sticky_worker_id,
        "state": "queued",
        "worker_id": None,
        "lease_expires_at_ms": None,
        "attempt_deadline_ms": None,
        "cancel_requested": False,
        "progress": None,
        "workflow": c.workflow,
        "priority": a.priority,
        "flow_key": a.flow_key,
        "key_rate_count": None if a.key_rate_limit is None else a.key_rate_limit.count,
        "key_rate_period_ms": None if a.key_rate_limit is None else a.key_rate_limit.period_ms,
    }


def _lease_params(a: LeaseTask, c: _AppendContext) -> dict[str, Any]:
    return {
        "b_token": a.token,
        "worker_id": a.worker_id,
        "lease_expires_at_ms": a.lease_expires_at_ms,
        "attempt_deadline_ms": a.attempt_deadline_ms,
    }


def _wait_for_slot_params(a: WaitForFlowSlot, c: _AppendContext) -> dict[str, Any]:
    return {
        "execution_id": c.execution_id,
        "workflow": c.workflow,
        "flow_key": a.flow_key,
        "priority": a.priority,
        "slot_limit": a.limit,
        "running": False,
        "since_ms": c.now_ms,
    }


def _execution_params(a: AdmitFlowSlot | FreeFlowSlot, c: _AppendContext) -> dict[str, Any]:
    return {"b_execution_id": c.execution_id}


def _token_params(a: DeleteTask | CancelTask, c: _AppendContext) -> dict[str, Any]:
    return {"b_token": a.token}


def _timer_params(a: StartTimer, c: _AppendContext) -> dict[str, Any]:
    return {"timer_id": a.timer_id, "execution_id": c.execution_id, "fire_at_ms": a.fire_at_ms}


def _timer_id_params(a: CancelTimer, c: _AppendContext) -> dict[str, Any]:
    return {"b_timer_id": a.timer_id}


def _dead_letter_params(a: AddDeadLetter, c: _AppendContext) -> dict[str, Any]:
    return {
        "dead_letter_id": a.dead_letter_id,
        "execution_id": c.execution_id,
        "step": a.step,
        "attempt": a.attempt,
        "error": a.error,
        "created_at_ms": c.now_ms,
        "resolved_at_ms": None,
    }


def _spec_params(a: ReplaceSpec, c: _AppendContext) -> dict[str, Any]:
    return {"b_execution_id": c.execution_id, "spec": a.spec, "spec_hash": a.spec_hash}


def _message_params(a: SendMessage, c: _AppendContext) -> dict[str, Any]:
    return {
        "message_id": a.message_id,
        "execution_id": c.execution_id,
        "kind": a.kind,
        "body": {"target": a.target, "seq": a.seq, "body": a.body},
        "created_at_ms": c.now_ms,
    }


def _resolve_params(a: ResolveDeadLetter, c: _AppendContext) -> dict[str, Any]:
    return {"b_dead_letter_id": a.dead_letter_id, "resolved_at_ms": c.now_ms}


def _retired_values(retired: RetiredExecution) -> dict[str, Any]:
    return {
        "execution_id": retired.execution_id,
        "workflow": retired.workflow,
        "phase": retired.phase,
        "finished_at_ms": retired.finished_at_ms,
        "retired_at_ms": retired.retired_at_ms,
        "export": retired.export,
    }
