"""A deterministic asyncio event loop: one per workflow instance, run inside the worker's own loop.

Workflow code must issue the same commands whenever it is replayed, so its loop has no clock, no
timers, no I/O and no threads: only ready callbacks, run in FIFO order. An activation swaps this
loop in as the running loop, runs callbacks until none is left, and swaps the worker's loop back;
nothing awaits in between, so the worker's loop never notices.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import weakref
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

from cerebelum.workflow.errors import WorkflowTaskError

__all__ = ["DEFAULT_MAX_CALLBACKS", "DeterministicLoop", "new_loop"]

log = logging.getLogger("cerebelum.workflow")

T = TypeVar("T")

DEFAULT_MAX_CALLBACKS = 1_000_000
"""Callbacks one activation may run before it is taken for a busy loop."""

_USE_WF = (
    "workflow code must be deterministic: {what} is not available in a workflow "
    "(use wf.sleep for timers, wf.step for I/O and anything that talks to the world)"
)


class DeterministicLoop(asyncio.AbstractEventLoop):
    """Runs workflow code's callbacks in FIFO order, on demand, with ``time()`` the workflow's now."""

    def __init__(self, *, max_callbacks: int = DEFAULT_MAX_CALLBACKS) -> None:
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        self._now = 0.0
        self._closed = False
        self._running = False
        self._max_callbacks = max_callbacks
        self._exception_handler: Any = None
        self._tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self.violation: WorkflowTaskError | None = None
        """The first determinism rule the code broke, even if the code caught the error."""

    # -- running ----------------------------------------------------------------------------

    def set_time(self, now: float) -> None:
        self._now = now

    def run_until_idle(self) -> None:
        """Run ready callbacks until none is left; raises ``WorkflowTaskError`` on a busy loop or a broken rule."""
        if self._running:
            raise RuntimeError("the workflow loop is already running")
        outer = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self)
        self._running = True
        try:
            count = 0
            while self._ready:
                handle = self._ready.popleft()
                if handle.cancelled():
                    continue
                count += 1
                if count > self._max_callbacks:
                    raise WorkflowTaskError(
                        f"the workflow code ran {self._max_callbacks} callbacks without waiting for a command:"
                        " is there a busy loop (a loop around asyncio.sleep(0) or a task that never awaits wf)?"
                    )
                handle._run()
        finally:
            self._running = False
            asyncio.events._set_running_loop(outer)
        if self.violation is not None:
            raise self.violation

    def close_tasks(self) -> None:
        """Cancel the tasks still pending (an evicted instance), so their coroutines are closed, not leaked."""
        pending = [task for task in self._tasks if not task.done()]
        for task in pending:
            task.cancel()
        try:
            self.violation = None
            self.run_until_idle()
        except Exception:  # the code refused to stop: drop it (its tasks do not log "destroyed but pending")
            log.debug("a workflow's code did not stop when its instance was evicted", exc_info=True)
        for task in list(self._tasks):
            if task.done() and not task.cancelled():
                task.exception()  # seen: the task's outcome was reported, or the instance is dropped
        self._tasks.clear()
        self._ready.clear()

    # -- what asyncio needs -----------------------------------------------------------------

    def time(self) -> float:
        return self._now

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        pass

    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Coroutine[Any, Any, T] | Generator[Any, None, T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[T]:
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        task._log_destroy_pending = False  # type: ignore[attr-defined]  # waiting on a command is its normal state
        self._tasks.add(task)
        return task

    def call_soon(  # type: ignore[override]
        self, callback: Callable[..., object], *args: Any, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise self._forbid("asyncio.sleep (or call_later, a timeout)")

    def call_at(self, when: float, callback: Callable[..., object], *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise self._forbid("asyncio.sleep (or call_at, a timeout)")

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise self._forbid("call_soon_threadsafe (threads)")

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> Any:  # type: ignore[override]
        raise self._forbid("run_in_executor (threads)")

    def get_exception_handler(self) -> Any:
        return self._exception_handler

    def set_exception_handler(self, handler: Any) -> None:
        self._exception_handler = handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        log.error("workflow code: %s", context.get("message", "unhandled error"), exc_info=exc)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        if self._exception_handler is None:
            self.default_exception_handler(context)
        else:
            self._exception_handler(self, context)

    def _forbid(self, what: str) -> WorkflowTaskError:
        error = WorkflowTaskError(_USE_WF.format(what=what))
        if self.violation is None:
            self.violation = error
        return error


def _forbidden(name: str) -> Callable[..., Any]:
    def forbidden(self: DeterministicLoop, *args: Any, **kwargs: Any) -> Any:
        raise self._forbid(f"{name} (I/O)")

    forbidden.__name__ = name
    return forbidden


for _name in (
    "getaddrinfo",
    "getnameinfo",
    "create_connection",
    "create_server",
    "create_datagram_endpoint",
    "create_unix_connection",
    "create_unix_server",
    "connect_accepted_socket",
    "sendfile",
    "start_tls",
    "sock_recv",
    "sock_recv_into",
    "sock_sendall",
    "sock_connect",
    "sock_accept",
    "sock_sendfile",
    "add_reader",
    "add_writer",
    "remove_reader",
    "remove_writer",
    "subprocess_exec",
    "subprocess_shell",
    "connect_read_pipe",
    "connect_write_pipe",
    "add_signal_handler",
    "run_forever",
    "run_until_complete",
    "shutdown_asyncgens",
    "shutdown_default_executor",
):
    setattr(DeterministicLoop, _name, _forbidden(_name))


def new_loop(*, max_callbacks: int = DEFAULT_MAX_CALLBACKS) -> DeterministicLoop:
    """A new loop (typeshed declares the I/O methods this loop forbids abstract; they exist at runtime)."""
    return DeterministicLoop(max_callbacks=max_callbacks)  # type: ignore[abstract]
