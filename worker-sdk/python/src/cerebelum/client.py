"""``Client``: the blocking client for scripts and CLIs."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar, cast

import grpc

from cerebelum import operations as ops
from cerebelum.config import resolve_address
from cerebelum.connection import TlsSettings, open_channel, resolve_tls, resolve_token_source
from cerebelum.errors import error_from_rpc
from cerebelum.models import DeadLetter, Execution, ExecutionList, HistoryEvent, WorkflowInfo
from cerebelum.schedules import ScheduleMethods
from cerebelum.stubs import client_methods

__all__ = ["Client"]

T = TypeVar("T")


class Client(ScheduleMethods):
    """Blocking client of the Cerebelum ``WorkflowService``.

    ``address`` defaults to ``$CEREBELUM_ADDRESS`` or ``127.0.0.1:7450``; ``token``,
    ``token_file`` and ``tls`` as for :class:`~cerebelum.Worker`. ``timeout`` (seconds) bounds
    every call except :meth:`wait`.
    Server errors raise :class:`~cerebelum.CerebelumError` subclasses. Use as a context
    manager or call :meth:`close`.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        token: str | None = None,
        token_file: str | None = None,
        tls: bool | TlsSettings | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.address = resolve_address(address)
        self.timeout = timeout
        self._tls = resolve_tls(tls)
        self._channel = open_channel(self.address, tls=self._tls, tokens=resolve_token_source(token, token_file))
        self._methods = client_methods(self._channel)

    def __repr__(self) -> str:
        return f"Client(address={self.address!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _run(self, operation: ops.Operation[T]) -> T:
        try:
            call = next(operation)
            while True:
                try:
                    reply = self._methods[call.method](call.request, timeout=call.timeout or self.timeout)
                except grpc.RpcError as exc:
                    raise error_from_rpc(exc, tls=self._tls is not None) from None
                call = operation.send(reply)
        except StopIteration as stop:
            return cast(T, stop.value)

    def apply_workflow(self, name: str, spec: dict[str, Any]) -> WorkflowInfo:
        """Create or update the workflow ``name`` from its spec (the CRD's ``.spec`` as a dict)."""
        return self._run(ops.apply_workflow(name, spec))

    def get_workflow(self, name: str) -> WorkflowInfo:
        return self._run(ops.get_workflow(name))

    def list_workflows(self) -> builtins.list[WorkflowInfo]:
        return self._run(ops.list_workflows())

    def start(
        self,
        workflow: str,
        input: Any = None,
        *,
        execution_id: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Execution:
        """Start an execution. The same ``execution_id`` again, with the same workflow and input, returns
        the first execution (with its labels); with another workflow or input it raises ``AlreadyExistsError``.

        ``labels``: what :meth:`list` filters it by, Kubernetes label syntax (``team=billing``,
        ``example.com/tier=gold``), at most 32; a bad one raises ``InvalidArgumentError`` naming it.
        """
        return self._run(ops.start(workflow, input, execution_id, labels))

    def get(self, id: str, *, latest_run: bool = False) -> Execution:
        """The execution ``id``; with ``latest_run``, the latest run of the continue-as-new chain
        ``id`` belongs to (any run's id finds it), so a caller that kept the first id sees where the
        chain is now."""
        return self._run(ops.get(id, latest_run))

    def list(
        self,
        *,
        workflow: str | None = None,
        phase: str | None = None,
        limit: int = 100,
        phases: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        id_contains: str | None = None,
        page_token: str | None = None,
    ) -> builtins.list[Execution]:
        """Executions newest first, at most ``limit`` (up to 1000): one page of :meth:`list_page`."""
        page = self.list_page(
            workflow=workflow,
            phases=(*([phase] if phase else []), *phases),
            limit=limit,
            labels=labels,
            created_after=created_after,
            created_before=created_before,
            id_contains=id_contains,
            page_token=page_token,
        )
        return builtins.list(page.executions)

    def list_page(
        self,
        *,
        workflow: str | None = None,
        phases: Sequence[str] = (),
        limit: int = 100,
        labels: Mapping[str, str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        id_contains: str | None = None,
        page_token: str | None = None,
    ) -> ExecutionList:
        """A page of executions newest first and the token of the next one; every filter given must hold.

        ``phases``: any of them; ``labels``: all of them; ``created_after`` (inclusive) and
        ``created_before`` (exclusive): aware datetimes; ``id_contains``: text in the id (ASCII case
        ignored). Pass ``next_page_token`` back as ``page_token``, with the same filters: pages never
        skip or repeat an execution, even while new ones start.
        """
        filters = ops.ListFilter(
            workflow=workflow,
            phases=tuple(phases),
            labels=labels,
            created_after=created_after,
            created_before=created_before,
            id_contains=id_contains,
        )
        return self._run(ops.list_executions(filters, limit, page_token))

    def history(self, id: str, *, after_seq: int = 0) -> builtins.list[HistoryEvent]:
        """All events after ``after_seq``, fetched page by page."""
        return self._run(ops.history(id, after_seq))

    def wait(self, id: str, *, timeout: float | None = None, follow_runs: bool = False) -> Execution:
        """Block until the execution is terminal; ``TimeoutError`` after ``timeout`` seconds.

        A run that continued as new is terminal (phase ContinuedAsNew, ``continued_as`` names the
        next); with ``follow_runs`` the wait goes on to the end of the whole chain instead, and
        returns its last run.
        """
        return self._run(ops.wait(id, timeout, follow_runs))

    def approve(self, id: str, step: str, *, approver: str, payload: Any = None) -> Execution:
        return self._run(ops.approve(id, step, approver, payload))

    def reject(self, id: str, step: str, *, approver: str, reason: str = "") -> Execution:
        return self._run(ops.reject(id, step, approver, reason))

    def cancel(self, id: str, *, reason: str = "") -> Execution:
        return self._run(ops.cancel(id, reason))

    def pause(self, id: str, *, reason: str = "") -> Execution:
        """Hold the execution: it starts nothing new (steps, retries, timers, children) until
        :meth:`resume`; steps already running finish. Pausing a paused one changes nothing."""
        return self._run(ops.pause(id, reason))

    def resume(self, id: str) -> Execution:
        """Lift :meth:`pause`'s hold; the steps it held start in the order they were reached."""
        return self._run(ops.resume(id))

    def pause_workflow(self, name: str, *, reason: str = "") -> WorkflowInfo:
        """New executions of the workflow start held (phase Paused) until :meth:`resume_workflow`;
        those already running go on."""
        return self._run(ops.pause_workflow(name, reason))

    def resume_workflow(self, name: str) -> WorkflowInfo:
        """Lift the workflow's pause: every execution it held resumes."""
        return self._run(ops.resume_workflow(name))

    def reset(self, id: str, step: str, *, new_id: str | None = None, reason: str = "") -> Execution:
        """Start a new execution (``new_id``, or a generated one) at ``step`` of the timeline, on the
        workflow's current spec, keeping the results of the steps before it from ``id``, which is
        cancelled if it still runs. Returns the new execution."""
        return self._run(ops.reset(id, step, new_id=new_id, reason=reason))

    def bulk(
        self,
        action: str,
        *,
        ids: builtins.list[str] | None = None,
        workflow: str | None = None,
        phase: str | None = None,
        everything: bool = False,
        limit: int = 1000,
        reason: str = "",
        dry_run: bool = False,
    ) -> ops.BulkResult:
        """``action`` ("cancel", "pause", "resume" or "redrive") on each of ``ids``, or on the newest
        ``limit`` executions of ``workflow`` and/or in ``phase`` (``everything``: all of them), each on
        its own; every outcome is returned, and ``truncated`` says more matched than ``limit``."""
        return self._run(
            ops.bulk(
                action,
                ids=ids,
                workflow=workflow,
                phase=phase,
                everything=everything,
                limit=limit,
                reason=reason,
                dry_run=dry_run,
            )
        )

    def dead_letters(self, *, execution_id: str | None = None) -> builtins.list[DeadLetter]:
        return self._run(ops.dead_letters(execution_id))

    def redrive(self, dead_letter_id: str, *, with_current_workflow: bool = False) -> Execution:
        """Run a dead-lettered step again; ``with_current_workflow``: on the Workflow's current spec
        from now on (a fixed expression, say), refused when its timeline or steps changed."""
        return self._run(ops.redrive(dead_letter_id, with_current_workflow=with_current_workflow))

    # -- signals (issue 17) ---------------------------------------------------------------------

    def signal(self, id: str, name: str, data: Any = None, *, request_id: str | None = None) -> Execution:
        """Send the signal ``name`` with ``data`` (any JSON value) to a running execution.

        The engine queues it, in order, until a signal step waiting for ``name`` takes it, so it is
        never lost when no step waits yet (a name none of the workflow's signal steps waits for is
        refused: it would wait forever). Pass ``request_id`` when the call may be retried (a
        timeout, a restarted script): a signal sent again with the same id is delivered once.
        Returns the execution as it is just after the delivery.
        """
        return self._run(ops.signal(id, name, data, request_id))

    def signal_with_start(
        self,
        workflow: str,
        *,
        execution_id: str,
        input: Any = None,
        signal: str,
        data: Any = None,
        request_id: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Execution:
        """Signal the execution ``execution_id``, starting it first (``workflow`` with ``input`` and
        ``labels``) unless it exists.

        One call where a ``get``, ``start`` and ``signal`` would race another sender: when it is
        started here, the start and the signal are one transaction, so no step can run before the
        signal is queued. An execution that exists is signalled as it is: ``workflow`` and ``input``
        only start one, and are not compared with what it started with (a second sender need not
        know them). ``execution_id`` is required: it is what makes a second sender find the
        execution the first one started.
        """
        return self._run(ops.signal_with_start(workflow, execution_id, input, signal, data, request_id, labels))
