"""`cerebelum queue ...`: list task queues, pause and resume them, set their rate limits.

A sub-app of its own, registered by `cli.main`. The TaskQueueService is an admin API that the
SDK's client does not wrap (workers and applications never call it), so this module opens its own
channel with the SDK's connection settings (address, token, TLS from the same flags and variables)
and turns RPC errors into the SDK's errors like every other command.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn, TypeVar

import grpc
import typer
from rich.table import Table
from rich.text import Text

from cerebelum.config import resolve_address
from cerebelum.connection import open_channel, resolve_tls, resolve_token_source
from cerebelum.errors import error_from_rpc
from cerebelum.v1 import task_queue_pb2 as pb
from cerebelum.v1 import task_queue_pb2_grpc as pb_grpc

from ..engine.rates import MAX_RATE_PERIOD_MS, format_period
from ..server import DEFAULT_ADDRESS
from .render import Output, console, emit, err_console, printable, rfc3339

__all__ = ["queue_app"]

queue_app = typer.Typer(help="Task queues: pause, resume and rate-limit what workers are handed.", no_args_is_help=True)

AddressOption = Annotated[str, typer.Option("--address", envvar="CEREBELUM_ADDRESS", help="Engine gRPC address.")]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml")]

T = TypeVar("T")
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(ms|s|m|h|d)\s*$")


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    count: int
    period_ms: int
    text: str  # "10/1s"


@dataclass(frozen=True, slots=True)
class TaskQueueInfo:
    """A queue as `queue list -o json|yaml` prints it (camelCase keys, RFC 3339 times)."""

    name: str
    paused: bool
    note: str
    rate_limit: RateLimitInfo | None
    updated_at: datetime | None
    ready: int
    scheduled: int
    running: int
    pollers: int
    last_poll: datetime | None
    waiting_reason: str
    waiting_until: datetime | None


def _fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(Text.assemble(("error:", "red"), f" {printable(message)}"))
    raise typer.Exit(code)


def parse_rate(text: str) -> tuple[int, int]:
    """ "10/s", "100/1m", "5/30s": (count, period in ms)."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a rate: write COUNT/PERIOD, e.g. 10/s, 100/1m, 5/30s")
    count, amount, unit = int(match[1]), int(match[2] or 1), match[3]
    period_ms = amount * _UNITS[unit]
    if count < 1 or not 1 <= period_ms <= MAX_RATE_PERIOD_MS:
        raise ValueError(f"{text!r}: at least 1 task per period, and a period of 1 ms to 1 day")
    return count, period_ms


def _time(stamp: Any, present: bool) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if present else None


def _info(message: pb.TaskQueueInfo) -> TaskQueueInfo:
    limit = None
    if message.HasField("rate_limit"):
        count, period = message.rate_limit.count, message.rate_limit.period_ms
        limit = RateLimitInfo(count, period, f"{count}/{format_period(period)}")
    return TaskQueueInfo(
        name=message.name,
        paused=message.paused,
        note=message.note,
        rate_limit=limit,
        updated_at=_time(message.updated_at, message.HasField("updated_at")),
        ready=message.ready,
        scheduled=message.scheduled,
        running=message.running,
        pollers=message.pollers,
        last_poll=_time(message.last_poll, message.HasField("last_poll")),
        waiting_reason=message.waiting_reason,
        waiting_until=_time(message.waiting_until, message.HasField("waiting_until")),
    )


@contextmanager
def _service(address: str) -> Iterator[Callable[[Callable[[pb_grpc.TaskQueueServiceStub], T]], T]]:
    """Calls on the TaskQueueService; an RPC error ends the command with its message."""
    tls = resolve_tls(None)
    channel = open_channel(resolve_address(address), tls=tls, tokens=resolve_token_source())
    stub = pb_grpc.TaskQueueServiceStub(channel)  # type: ignore[no-untyped-call]

    def call(rpc: Callable[[pb_grpc.TaskQueueServiceStub], T]) -> T:
        try:
            return rpc(stub)
        except grpc.RpcError as exc:
            _fail(str(error_from_rpc(exc, tls=tls is not None)))

    try:
        yield call
    finally:
        channel.close()


def _at(moment: datetime | None) -> str:
    return "-" if moment is None else rfc3339(moment)


def _state(queue: TaskQueueInfo) -> Text:
    if queue.paused:
        return Text("Paused", style="yellow")
    if queue.waiting_reason:
        return Text("Limited", style="yellow")
    return Text("Active", style="green")


@queue_app.command("list")
def list_queues(output: OutputOption = Output.TABLE, address: AddressOption = DEFAULT_ADDRESS) -> None:
    """List task queues: state, rate limit, tasks waiting, running and polls; why tasks wait."""
    with _service(address) as call:
        reply = call(lambda s: s.ListTaskQueues(pb.ListTaskQueuesRequest(), timeout=30))
    queues = [_info(q) for q in reply.task_queues]
    if reply.engines_not_counted:  # engines that split the shards, and some did not answer
        missing = ", ".join(reply.engines_not_counted)
        err_console.print(
            Text.assemble(
                ("warning:", "yellow"), f" the tasks of these engines' shards are not counted: {printable(missing)}"
            )
        )
    if output is not Output.TABLE:
        emit(queues, output)
        return
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "STATE", "RATE LIMIT", "READY", "SCHEDULED", "RUNNING", "POLLERS", "LAST POLL", "WAITING"):
        table.add_column(column)
    for queue in queues:
        table.add_row(
            Text(queue.name),
            _state(queue),
            Text(queue.rate_limit.text if queue.rate_limit else "-"),
            str(queue.ready),
            str(queue.scheduled),
            str(queue.running),
            str(queue.pollers),
            _at(queue.last_poll),
            Text(printable(queue.waiting_reason or "-")),
        )
    console.print(table)


@queue_app.command("pause")
def pause(
    name: str,
    note: Annotated[str, typer.Option(help="Why it is paused (shown where its steps wait).")] = "",
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Hand out nothing new of the queue; running tasks finish and their outcomes are accepted."""
    with _service(address) as call:
        call(lambda s: s.PauseTaskQueue(pb.PauseTaskQueueRequest(name=name, note=note), timeout=30))
    console.print(Text(f"queue/{name} paused"))


@queue_app.command("resume")
def resume(name: str, address: AddressOption = DEFAULT_ADDRESS) -> None:
    """Hand the queue's tasks out again, from where it stopped."""
    with _service(address) as call:
        call(lambda s: s.ResumeTaskQueue(pb.ResumeTaskQueueRequest(name=name), timeout=30))
    console.print(Text(f"queue/{name} resumed"))


@queue_app.command("limit")
def limit(
    name: str,
    rate: Annotated[
        str | None, typer.Argument(help="COUNT/PERIOD, e.g. 10/s, 100/1m, 5/30s (a sliding window).")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the queue's rate limit.")] = False,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Start at most COUNT of the queue's tasks in any PERIOD, across restarts; --clear removes it."""
    if (rate is None) == (not clear):
        _fail("give a RATE (e.g. 10/s) or --clear")
    request = pb.SetTaskQueueRateLimitRequest(name=name)
    if rate is not None:
        try:
            count, period_ms = parse_rate(rate)
        except ValueError as exc:
            _fail(str(exc))
        request.rate_limit.CopyFrom(pb.RateLimit(count=count, period_ms=period_ms))
    with _service(address) as call:
        reply = call(lambda s: s.SetTaskQueueRateLimit(request, timeout=30))
    shown = _info(reply).rate_limit
    console.print(Text(f"queue/{name} limited to {shown.text}" if shown else f"queue/{name} has no rate limit"))
