"""The outbox relay: delivers the messages decisions send to other executions, after they commit.

A decision that starts a child, continues as new, cancels its children or ends a child's run
writes `SendMessage` actions; the store keeps them in its outbox in the same transaction. This
service delivers each one (a start, or a command to the target) and only then deletes it, so a
crash anywhere in between delivers it again at the next start. Delivery is idempotent: ids are
deterministic (a second start of one id finds the first), a child's end told twice is STALE, a
second cancel a duplicate.

Messages to one target are delivered one at a time, in the order their sender sent them, so a
child's cancel never overtakes its start (which would leave it running: an orphan).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from ..engine import CommandRejected
from ..engine import actions as act
from ..engine import commands as cmd
from ..model import InputInvalid, WorkflowInvalid
from ..store import MessageRow, ShardNotOwned, StoreError
from .clock import Clock
from .database import Database
from .engine_service import (
    EngineService,
    ExecutionConflict,
    ExecutionNotFound,
    Origin,
    WorkflowNotFound,
)
from .workflow_key import WorkflowKey, namespace_of

__all__ = ["Relay"]

log = logging.getLogger(__name__)

JSON = Any
_NOT_STARTABLE = (WorkflowNotFound, InputInvalid, WorkflowInvalid, ExecutionConflict, CommandRejected, ValueError)


class Relay:
    """Delivers outbox messages; ``retry_ms`` spaces the attempts at one the store could not take."""

    def __init__(self, db: Database, engine: EngineService, *, clock: Clock, retry_ms: int = 1_000) -> None:
        self.db = db
        self.engine = engine
        self.clock = clock
        self.retry_ms = retry_ms
        self._queues: dict[str, deque[MessageRow]] = {}
        self._known: set[str] = set()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stopped = False
        engine.add_listener(self.on_actions)

    async def start(self) -> None:
        """Deliver what the outbox holds from before (a crash, a restart), then what comes."""
        while True:
            rows = await self.db.run(self.db.store.pending_messages, limit=10_000)
            fresh = [row for row in rows if row.message_id not in self._known]
            for row in fresh:
                self._enqueue(row)
            if len(rows) < 10_000 or not fresh:
                return

    async def stop(self) -> None:
        self._stopped = True
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Return once every message known so far was delivered (for tests and shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    def on_actions(self, execution_id: str, workflow: str, actions: list[act.Action]) -> None:
        now = self.clock.now_ms()
        for action in actions:
            if isinstance(action, act.SendMessage):
                row = MessageRow(
                    action.message_id, execution_id, action.kind, action.target, action.seq, action.body, now
                )
                self._enqueue(row)

    # -- one queue per target ---------------------------------------------------------------

    def _enqueue(self, row: MessageRow) -> None:
        if self._stopped or row.message_id in self._known:
            return
        self._known.add(row.message_id)
        self._queues.setdefault(row.target, deque()).append(row)
        if row.target not in self._running:
            task = asyncio.create_task(self._drain(row.target), name=f"relay {row.target}")
            self._running[row.target] = task

    async def _drain(self, target: str) -> None:
        queue = self._queues[target]
        try:
            while queue:
                row = queue[0]
                while not await self._deliver(row):
                    await self.clock.sleep(self.retry_ms / 1000)
                queue.popleft()
                self._known.discard(row.message_id)
        finally:
            del self._running[target]
            if not queue:
                self._queues.pop(target, None)
            elif not self._stopped:  # a message came as this drain was ending
                self._running[target] = asyncio.create_task(self._drain(target), name=f"relay {target}")

    async def _deliver(self, row: MessageRow) -> bool:
        """True once the message is delivered (or can never be) and gone from the outbox, or is another
        engine's to relay now (its sender's shard moved)."""
        try:
            if row.kind == "start":
                await self._start(row)
            else:
                await self._command(row)
            await self.db.run(self.db.store.delete_message, row.message_id)
        except ShardNotOwned as exc:
            if not await self.engine.owns_execution(row.execution_id):
                # Its sender's shard changed hands: the new owner relays it from the outbox.
                log.info("message %s of %s left to its new owner (%s)", row.message_id, row.execution_id, exc)
                return True
            log.warning("message %s to %s not delivered yet (%s); retrying", row.message_id, row.target, exc)
            return False
        except (StoreError, OSError) as exc:
            log.warning("message %s to %s not delivered yet (%s); retrying", row.message_id, row.target, exc)
            return False
        except Exception:
            log.exception("message %s to %s failed; retrying", row.message_id, row.target)
            return False
        return True

    # -- what the messages do ---------------------------------------------------------------

    async def _start(self, row: MessageRow) -> None:
        body = row.body
        if "continuedFrom" in body:
            await self._start_next_run(row.target, body)
            return
        # A child's Workflow is looked up in its parent's namespace, never another one.
        key = str(WorkflowKey(namespace_of(body["namespaceOf"]), body["workflow"]))
        origin = Origin(parent_id=body["parentId"], parent_step=body["parentStep"])
        try:
            await self.engine.start(key, body["input"], execution_id=row.target, origin=origin)
        except _NOT_STARTABLE as exc:
            log.info("child %s of %s could not start: %s", row.target, body["parentId"], exc)
            failed = cmd.ChildFinished(row.target, "Failed", None, f"the child could not start: {exc}")
            await self._tell(body["parentId"], failed)

    async def _start_next_run(self, next_id: str, body: dict[str, JSON]) -> None:
        """The next run, on its Workflow's current spec: a long-running loop picks up a new version
        at its next run. If the Workflow is gone, or its spec refuses the input, on the spec the
        previous run ran (so the chain never breaks on a change made meanwhile)."""
        origin = Origin(
            parent_id=body.get("parentId"),
            parent_step=body.get("parentStep"),
            continued_from=body["continuedFrom"],
            first_run_id=body["firstRunId"],
            run=body["run"],
            carried_request_ids=tuple(body.get("requestIds", ())),
        )
        carried = [cmd.Signal(s["name"], s["data"], sender=s["sender"]) for s in body.get("signals", ())]
        # One chain, one set of labels: the next run is listed under the labels the first was given
        # (read from the previous run's row; none when retention removed it meanwhile).
        labels = (await self.engine.labels_of([body["continuedFrom"]])).get(body["continuedFrom"])
        try:
            await self.engine.start(
                body["workflow"], body["input"], execution_id=next_id, origin=origin, carried=carried, labels=labels
            )
            return
        except (WorkflowNotFound, InputInvalid, WorkflowInvalid) as exc:
            log.info("run %s starts on its previous run's spec: %s", next_id, exc)
        previous = await self.engine.get_execution(body["continuedFrom"])
        if previous is None:  # retention removed it: nothing to run on
            log.warning("run %s cannot start: its previous run %s is gone", next_id, body["continuedFrom"])
            return
        await self.engine.start(
            body["workflow"],
            body["input"],
            execution_id=next_id,
            origin=origin,
            spec=previous.spec,
            carried=carried,
            labels=labels,
        )

    async def _command(self, row: MessageRow) -> None:
        body = row.body
        command: cmd.Command
        if body["command"] == "cancel":
            command = cmd.Cancel(body["reason"])
        else:
            command = cmd.ChildFinished(body["childId"], body["phase"], body.get("output"), body.get("error"))
        await self._tell(row.target, command)

    async def _tell(self, target: str, command: cmd.Command) -> None:
        try:
            await self.engine.handle(target, command)
        except (ExecutionNotFound, CommandRejected) as exc:
            log.info("%s for %s not applied: %s", type(command).__name__, target, exc)
