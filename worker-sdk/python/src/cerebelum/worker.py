"""``Worker``: registers steps and workflow functions, polls for their tasks, runs them and reports their outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import grpc

from cerebelum.backoff import Backoff
from cerebelum.completion import Completer, Reporter
from cerebelum.config import default_worker_id, dns_target, engine_addresses, resolve_address
from cerebelum.connection import TlsSettings, open_aio_channel, resolve_tls, resolve_token_source
from cerebelum.execution import TaskExecutor
from cerebelum.logs import default_logging
from cerebelum.outage import Outage, describe
from cerebelum.steps import StepDefinition
from cerebelum.stubs import worker_rpcs
from cerebelum.v1 import worker_pb2
from cerebelum.work_stream import WorkStream
from cerebelum.workflow.definition import WorkflowDefinition
from cerebelum.workflow.tasks import WorkflowTaskHandler

__all__ = ["Worker"]

log = logging.getLogger("cerebelum.worker")

F = TypeVar("F", bound=Callable[..., Any])

_POLL_MARGIN = 10.0  # seconds a long poll may take beyond its wait before it is abandoned
_SUBMIT_GRACE = 5.0  # seconds to report the steps cancelled when the drain timeout ran out
_RESOLVE_EVERY_S = 10.0  # how often a "dns:" address is resolved again


@dataclass(slots=True)
class _Engine:
    """One engine this worker polls, and what reports to it: a step heartbeats, and a report and a
    code workflow's history read go, to the engine that gave the task."""

    address: str
    channel: grpc.aio.Channel
    stream: WorkStream  # polls and reports go on it
    poll: Callable[..., Awaitable[worker_pb2.PollTaskResponse]]
    executor: TaskExecutor
    workflows: WorkflowTaskHandler
    completer: Completer


class Worker:
    """Runs the steps of one task queue.

        ::

            worker = Worker("orders")

            @worker.step()
            async def charge(input: Order) -> Receipt: ...

            worker.run()  # until SIGTERM / SIGINT

        ``address`` defaults to ``$CEREBELUM_ADDRESS`` or ``127.0.0.1:7450``. Every call carries
        ``authorization: Bearer <token>``: ``token``, else ``$CEREBELUM_TOKEN``, else the file
        ``token_file`` or ``$CEREBELUM_TOKEN_FILE`` (re-read when it changes), else the projected
        ServiceAccount token the Helm chart mounts. ``tls`` (True, or :class:`TlsSettings`)
        defaults to on when ``$CEREBELUM_TLS`` is true or ``$CEREBELUM_TLS_CA`` names a CA. At most
        ``max_concurrency`` steps run at once; the worker only polls while it has room, with up to
    ``max_pollers`` polls in flight (one poll waits a round trip per task). A long poll
        waits up to ``poll_wait`` seconds. On shutdown, running steps get ``drain_timeout`` seconds
        to finish and report.

        Workflow functions (``@worker.workflow()``) run their workflow tasks inline, without taking a
        step's slot; up to ``max_cached_workflows`` executions stay live in memory, so that their next
        task applies only the new events instead of replaying the whole history.
    """

    def __init__(
        self,
        task_queue: str,
        *,
        address: str | None = None,
        token: str | None = None,
        token_file: str | None = None,
        tls: bool | TlsSettings | None = None,
        worker_id: str | None = None,
        max_concurrency: int = 10,
        max_pollers: int = 4,
        poll_wait: float = 10.0,
        drain_timeout: float = 30.0,
        max_cached_workflows: int = 1000,
    ) -> None:
        if not task_queue:
            raise ValueError("task_queue must not be empty")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_pollers < 1:
            raise ValueError("max_pollers must be at least 1")
        if poll_wait <= 0:
            raise ValueError("poll_wait must be positive")
        if drain_timeout < 0:
            raise ValueError("drain_timeout must not be negative")
        if max_cached_workflows < 0:
            raise ValueError("max_cached_workflows must not be negative")
        self.task_queue = task_queue
        self.address = resolve_address(address)
        # Several engines sharing one store (their shards split): "host1:7450,host2:7450", one poller
        # group per engine, all sharing the step slots; or "dns:///replicas:7450", one channel spread
        # over every replica the name resolves to (`config.engine_addresses`).
        self.addresses = engine_addresses(self.address)
        if not self.addresses:
            raise ValueError(f"address {address!r} names no engine")
        self.worker_id = worker_id or default_worker_id()
        self.max_concurrency = max_concurrency
        self.max_pollers = max_pollers
        self.poll_wait = poll_wait
        self.drain_timeout = drain_timeout
        self.max_cached_workflows = max_cached_workflows
        self._tokens = resolve_token_source(token, token_file)
        self._tls = resolve_tls(tls)
        self._steps: dict[str, StepDefinition] = {}
        self._workflows: dict[str, WorkflowDefinition] = {}
        self._engines: list[_Engine] = []
        self._resolved_before: dict[str, list[str]] = {}  # a "dns:" address's last non-empty answer
        self._started = False
        self._stop_requested = False
        self._running: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._finished: asyncio.Event | None = None
        self._signal_tasks: set[asyncio.Task[None]] = set()
        self._next_poll = worker_pb2.PollTaskRequest()  # set at start: what a step's report asks for next

    def __repr__(self) -> str:
        return f"Worker(task_queue={self.task_queue!r}, address={self.address!r}, worker_id={self.worker_id!r})"

    # -- registration -----------------------------------------------------------------------

    @overload
    def step(self, fn: F, /) -> F: ...

    @overload
    def step(self, fn: None = None, /, *, name: str | None = None) -> Callable[[F], F]: ...

    def step(self, fn: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
        """Register a step function (async, or sync to run in a thread pool).

        Use as ``@worker.step()``, ``@worker.step(name="x")`` or ``@worker.step``. The step
        name defaults to the function's name. The function is returned unchanged.
        """

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            step_name = name or func.__name__
            if step_name in self._steps:
                raise ValueError(f"step {step_name!r} is already registered")
            if self._started:
                raise RuntimeError("steps must be registered before the worker starts")
            self._steps[step_name] = StepDefinition(step_name, func)
            if not hasattr(func, "__cerebelum_step__"):  # so that wf.step(func) names the registered step
                with contextlib.suppress(AttributeError, TypeError):
                    func.__cerebelum_step__ = step_name  # type: ignore[attr-defined]
            return func

        return register(fn) if fn is not None else register

    @overload
    def workflow(self, fn: F, /) -> F: ...

    @overload
    def workflow(self, fn: None = None, /, *, name: str | None = None) -> Callable[[F], F]: ...

    def workflow(self, fn: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
        """Register a workflow function: ``async def f(wf: WorkflowContext, input)`` (or just ``(wf)``).

        Use as ``@worker.workflow()``, ``@worker.workflow(name="x")`` or ``@worker.workflow``. The name
        (what a Workflow's ``spec.code.function`` names) defaults to the function's. The function is
        returned unchanged.
        """

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            workflow_name = name or func.__name__
            if workflow_name in self._workflows:
                raise ValueError(f"workflow {workflow_name!r} is already registered")
            if self._started:
                raise RuntimeError("workflows must be registered before the worker starts")
            self._workflows[workflow_name] = WorkflowDefinition(workflow_name, func)
            if not hasattr(func, "__cerebelum_workflow__"):  # so that wf.child(func) names it
                with contextlib.suppress(AttributeError, TypeError):
                    func.__cerebelum_workflow__ = workflow_name  # type: ignore[attr-defined]
            return func

        return register(fn) if fn is not None else register

    @property
    def workflow_names(self) -> tuple[str, ...]:
        """Names of the registered workflow functions, in registration order."""
        return tuple(self._workflows)

    @property
    def step_names(self) -> tuple[str, ...]:
        """Names of the registered steps, in registration order."""
        return tuple(self._steps)

    @property
    def active_steps(self) -> int:
        """How many tasks are running now."""
        return len(self._running)

    # -- running ----------------------------------------------------------------------------

    def run(self, *, configure_logging: bool = True) -> None:
        """Run until SIGTERM or SIGINT, then drain gracefully (a second signal stops at once).

        With ``configure_logging`` (the default), when neither the ``cerebelum`` logger nor the
        root logger has a handler, the worker's INFO and higher lines go to stderr while it runs.
        """
        with default_logging(enabled=configure_logging):
            asyncio.run(self._run_with_signals())

    async def _run_with_signals(self) -> None:
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
                pass
        try:
            await self.run_async()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stop_requested:
            log.warning("%s again: stopping without waiting for running steps", sig.name)
            for engine in self._engines:
                engine.executor.cancel_all("shutdown")
            return
        log.info("%s: draining (up to %.0f s for %d running steps)", sig.name, self.drain_timeout, len(self._running))
        task = asyncio.get_running_loop().create_task(self.shutdown())
        self._signal_tasks.add(task)
        task.add_done_callback(self._signal_tasks.discard)

    async def run_async(self) -> None:
        """Poll and run tasks until :meth:`shutdown` is called, then drain and return."""
        if self._started:
            raise RuntimeError("this worker is already running (or has run)")
        if not self._steps and not self._workflows:
            raise RuntimeError("register at least one step or workflow before running the worker")
        self._started = True
        if self._stop_requested:
            return
        self._finished = asyncio.Event()
        has_sync = any(not definition.is_async for definition in self._steps.values())
        pool = (
            ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="cerebelum-step")
            if has_sync
            else None
        )
        try:
            self._next_poll = self._poll_request(steps=True)
            self._next_poll.wait_ms = 0
            log.info(
                "worker %s serving task queue %r at %s%s: steps %s%s; up to %d at once",
                self.worker_id,
                self.task_queue,
                ", ".join(self.addresses),
                " (TLS)" if self._tls is not None else "",
                ", ".join(self._steps) or "none",
                f"; workflows {', '.join(self._workflows)}" if self._workflows else "",
                self.max_concurrency,
            )
            slots = asyncio.Semaphore(self.max_concurrency)  # shared: the step slots are this process's
            self._poller = asyncio.get_running_loop().create_task(self._poll_engines(slots, pool))
            try:
                await self._poller
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():  # cancelled from outside: stop now
                    await self._abandon()
                    raise
            await self._drain()
        finally:
            self._stop_requested = True
            for engine in self._engines:
                engine.workflows.close()
                await engine.stream.close()
                await engine.channel.close(None)
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            self._finished.set()
            log.info("worker %s stopped", self.worker_id)

    async def shutdown(self) -> None:
        """Stop polling at once, let running steps finish (up to ``drain_timeout``), report them, return.

        Returns when :meth:`run_async` has returned. Do not call it from inside a step.
        """
        self._stop_requested = True
        if self._poller is not None:
            self._poller.cancel()
        if self._finished is not None:
            await self._finished.wait()

    def _open_engine(self, address: str, pool: ThreadPoolExecutor | None) -> _Engine:
        channel = open_aio_channel(address, tls=self._tls, tokens=self._tokens)
        rpcs = worker_rpcs(channel)
        tokens = self._tokens
        stream = WorkStream(
            rpcs.work,
            poll=rpcs.poll,
            complete_tasks=rpcs.complete_tasks,
            metadata=tuple if tokens is None else tokens.metadata,
        )
        engine = _Engine(
            address=address,
            channel=channel,
            stream=stream,
            poll=stream.poll,
            executor=TaskExecutor(
                steps=self._steps, worker_id=self.worker_id, heartbeat_rpc=rpcs.heartbeat, thread_pool=pool
            ),
            workflows=WorkflowTaskHandler(
                workflows=self._workflows,
                worker_id=self.worker_id,
                history_rpc=rpcs.history,
                max_cached_workflows=self.max_cached_workflows,
            ),
            completer=Completer(Reporter(stream.complete_tasks, rpcs.complete)),
        )
        self._engines.append(engine)
        return engine

    async def _poll_engines(self, slots: asyncio.Semaphore, pool: ThreadPoolExecutor | None) -> None:
        """A poller group per engine. A "dns:" name is resolved again every `_RESOLVE_EVERY_S`: a
        replica that appears gets a group, one that disappears loses its group (its steps running
        here still report through it)."""
        loops: dict[str, asyncio.Task[None]] = {}
        names = [dns_target(address) for address in self.addresses]
        try:
            while True:
                wanted = await self._resolved(names)
                for address in wanted:
                    if address not in loops:
                        engine = self._open_engine(address, pool)
                        loops[address] = asyncio.get_running_loop().create_task(self._poll_loop(engine, slots))
                for address in [known for known in loops if known not in wanted and wanted]:
                    loops.pop(address).cancel()
                    log.info("engine %s left %s: no longer polled", address, ", ".join(self.addresses))
                if not any(names):
                    await asyncio.gather(*loops.values())
                    return
                if not loops:  # nothing resolved yet
                    await asyncio.sleep(_RESOLVE_EVERY_S)
                    continue
                done, _ = await asyncio.wait(loops.values(), timeout=_RESOLVE_EVERY_S)
                for task in done:
                    task.result()  # a poll loop only ends by failing: say why
        finally:
            for task in loops.values():
                task.cancel()
            if loops:
                await asyncio.gather(*loops.values(), return_exceptions=True)

    async def _resolved(self, names: list[tuple[str, int] | None]) -> list[str]:
        """Each address to poll now: the list as given, each "dns:" name's current addresses (a name
        that does not resolve for now keeps what it had: an empty answer is a DNS hiccup, not no replica)."""
        found: list[str] = []
        loop = asyncio.get_running_loop()
        for address, name in zip(self.addresses, names, strict=True):
            if name is None:
                found.append(address)
                continue
            host, port = name
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as error:
                log.warning("cannot resolve %s (%s); polling what it resolved to before", address, error)
                infos = []
            current = [
                f"[{sockaddr[0]}]:{port}" if family == socket.AF_INET6 else f"{sockaddr[0]}:{port}"
                for family, _, _, _, sockaddr in infos
            ]
            if current:
                self._resolved_before[address] = current
            found += self._resolved_before.get(address, [])
        return list(dict.fromkeys(found))

    async def _poll_loop(self, engine: _Engine, slots: asyncio.Semaphore) -> None:
        """Step pollers bounded by the step slots and, apart, workflow pollers bounded by nothing: a
        workflow task is a short activation, and steps that fill every slot must not stop the code
        of other executions from moving on (as Temporal keeps workflow and activity slots apart)."""
        outage = Outage()
        pollers: list[Coroutine[Any, Any, None]] = []
        if self._steps:
            request = self._poll_request(steps=True)
            pollers += [
                self._poll_one(engine, request, slots, outage)
                for _ in range(min(self.max_pollers, self.max_concurrency))
            ]
        if self._workflows:
            request = self._poll_request(steps=False)
            pollers += [self._poll_one(engine, request, None, outage) for _ in range(self.max_pollers)]
        await asyncio.gather(*pollers)

    async def _poll_one(
        self, engine: _Engine, request: worker_pb2.PollTaskRequest, slots: asyncio.Semaphore | None, outage: Outage
    ) -> None:
        """One of the concurrent pollers; step pollers share the slots (``None`` for a workflow
        poller), and all share the outage (each reason logged once)."""
        loop = asyncio.get_running_loop()
        timeout = self.poll_wait + _POLL_MARGIN
        backoff = Backoff()

        def release() -> None:
            if slots is not None:
                slots.release()

        def finished(task: asyncio.Task[None]) -> None:
            self._running.discard(task)
            release()
            if not task.cancelled() and (exc := task.exception()) is not None:
                log.error("a task handler failed", exc_info=exc)

        def workflow_finished(task: asyncio.Task[None]) -> None:
            self._running.discard(task)
            if not task.cancelled() and (exc := task.exception()) is not None:
                log.error("a workflow task handler failed", exc_info=exc)

        while not self._stop_requested:
            if slots is not None:
                await slots.acquire()
            try:
                reply = await engine.poll(request, timeout=timeout)
            except Exception as exc:
                release()
                if outage.failed(exc, loop.time()):
                    log.warning("cannot poll %s at %s (%s); retrying", self.task_queue, engine.address, describe(exc))
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            lasted = outage.recovered(loop.time())
            if lasted is not None:
                log.info("polling %s again after %.1f s", self.task_queue, lasted)
            if not reply.HasField("task"):
                release()
                continue
            if reply.task.HasField("workflow_task"):
                release()  # (a step poller never gets one: it asks for steps only)
                task = loop.create_task(self._handle_workflow(reply.task, engine))
                self._running.add(task)
                task.add_done_callback(workflow_finished)
                continue
            task = loop.create_task(self._handle(reply.task, engine))
            self._running.add(task)
            task.add_done_callback(finished)

    def _poll_request(self, *, steps: bool) -> worker_pb2.PollTaskRequest:
        """A step poller's request (its steps) or a workflow poller's (its workflows)."""
        return worker_pb2.PollTaskRequest(
            worker_id=self.worker_id,
            task_queue=self.task_queue,
            steps=list(self._steps) if steps else [],
            workflows=[] if steps else list(self._workflows),
            wait_ms=round(self.poll_wait * 1000),
        )

    async def _handle_workflow(self, task: worker_pb2.Task, engine: _Engine) -> None:
        report = await engine.workflows.run(task)
        await engine.completer.submit(report)

    async def _handle(self, task: worker_pb2.Task, engine: _Engine) -> None:
        """Run a step task and report it; the report asks for this slot's next task (``poll_next``), and
        a task that comes back with the acknowledgement runs here in turn: one round trip per step."""
        next_task: worker_pb2.Task | None = task
        while next_task is not None:
            next_task = await self._run_one(next_task, engine)

    async def _run_one(self, task: worker_pb2.Task, engine: _Engine) -> worker_pb2.Task | None:
        report = await engine.executor.run(task)
        if report is None:
            return None
        if not self._stop_requested:
            report.poll_next.CopyFrom(self._next_poll)
        handler = engine.workflows
        continuation = None
        if report.WhichOneof("outcome") == "success" and task.execution_id in handler.cache:
            # This worker holds the step's code workflow: run it on the result now, so that the result
            # and the code's next commands are recorded in one commit (no workflow task round trip).
            continuation = handler.continue_after(task, report.success.output_json)
            if continuation is not None:
                report.workflow_continuation.CopyFrom(continuation.message)
        reply = None
        try:
            reply = await engine.completer.submit(report)
        finally:
            if continuation is not None:
                handler.settle(continuation, reply)
        # Leased to this worker: run it even if a stop began meanwhile (the drain waits for it).
        return reply.next_task if reply is not None and reply.HasField("next_task") else None

    async def _drain(self) -> None:
        running = set(self._running)
        if not running:
            return
        log.info("waiting up to %.1f s for %d running steps", self.drain_timeout, len(running))
        _, pending = await asyncio.wait(running, timeout=self.drain_timeout)
        if not pending:
            return
        log.warning("%d steps still running after %.1f s: cancelling them", len(pending), self.drain_timeout)
        await self._abandon()

    async def _abandon(self) -> None:
        """Cancel running steps, give their reports a moment to go out, then cancel the reports too."""
        for engine in self._engines:
            engine.executor.cancel_all("shutdown")
        running = set(self._running)
        if not running:
            return
        _, pending = await asyncio.wait(running, timeout=_SUBMIT_GRACE)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
