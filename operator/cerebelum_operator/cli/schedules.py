"""`cerebelum schedule ...`: create, list, describe, pause, resume, trigger and delete schedules.

A sub-app of its own, registered by `cli.main`; it talks to the engine through the Python SDK's
client like every other command, and prints user text (names, notes, reasons) as text, never markup.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
import yaml
from rich.table import Table
from rich.text import Text

from cerebelum import CerebelumError
from cerebelum.schedules import Schedule

from ..server import DEFAULT_ADDRESS
from .common import AddressOption, OutputOption, client, fail
from .render import Output, console, emit, printable, rfc3339

__all__ = ["schedule_app"]

schedule_app = typer.Typer(
    help="Schedules: start a workflow on a cron expression or an interval.", no_args_is_help=True
)

_fail = fail
_client = client


def _documents(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(name, spec) of every `Schedule` document in the file; the engine checks each spec."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}")
    except yaml.YAMLError as exc:
        _fail(f"{path} is not valid YAML: {exc}")
    found: list[tuple[str, dict[str, Any]]] = []
    for index, document in enumerate(documents, start=1):
        if not isinstance(document, dict) or document.get("kind") != "Schedule":
            _fail(f"{path}: document {index} is not a Schedule (expected kind: Schedule)")
        name = (document.get("metadata") or {}).get("name")
        spec = document.get("spec")
        if not isinstance(name, str) or not name:
            _fail(f"{path}: document {index}: metadata.name is required")
        if not isinstance(spec, dict):
            _fail(f"{path}: document {index} ({name}): spec is required and must be a mapping")
        found.append((name, spec))
    if not found:
        _fail(f"{path} has no documents")
    return found


@schedule_app.command("create")
def create(
    name: Annotated[str | None, typer.Argument(help="The schedule's name (not with -f).")] = None,
    workflow: Annotated[str | None, typer.Option(help="The workflow to start.")] = None,
    cron: Annotated[
        str | None, typer.Option(help="5-field cron expression, or @hourly, @daily, @weekly, @monthly, @yearly.")
    ] = None,
    interval: Annotated[str | None, typer.Option(help="Every this long (90s, 1h), counted from the epoch.")] = None,
    offset: Annotated[str | None, typer.Option(help="With --interval: shift each due time by this.")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone of --cron (default UTC).")] = None,
    input: Annotated[str | None, typer.Option("--input", help="The workflow's input, as JSON.")] = None,
    overlap: Annotated[str | None, typer.Option(help="skip (default), bufferOne, allowAll or cancelRunning.")] = None,
    catchup_window: Annotated[
        str | None, typer.Option("--catchup-window", help="Fire a due time missed by at most this (default 1m).")
    ] = None,
    jitter: Annotated[str | None, typer.Option(help="Delay each fire by up to this (a hash, not random).")] = None,
    start_at: Annotated[str | None, typer.Option("--start-at", help="No due time before this (RFC 3339).")] = None,
    end_at: Annotated[str | None, typer.Option("--end-at", help="No due time after this (RFC 3339).")] = None,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    note: Annotated[str | None, typer.Option(help="With --paused: why.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Schedule documents (YAML or JSON; '-' for stdin).")
    ] = None,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Create a schedule from options, or each Schedule document of a file. It fires from now on."""
    if file is not None:
        if name is not None or workflow is not None:
            _fail("give either -f FILE or NAME --workflow ..., not both")
        wanted = _documents(file)
    else:
        if name is None or workflow is None:
            _fail("give NAME and --workflow (and --cron or --interval), or -f FILE")
        value: Any = None
        if input is not None:
            try:
                value = json.loads(input)
            except json.JSONDecodeError as exc:
                _fail(f"--input is not valid JSON: {exc}")
        fields = {
            "workflow": workflow,
            "input": value,
            "cron": cron,
            "interval": interval,
            "offset": offset,
            "timezone": timezone,
            "overlap": overlap,
            "catchupWindow": catchup_window,
            "jitter": jitter,
            "startAt": start_at,
            "endAt": end_at,
            "paused": paused or None,
            "note": note,
        }
        wanted = [(name, {key: item for key, item in fields.items() if item is not None})]
    with _client(address) as client:
        for schedule_name, spec in wanted:
            try:
                created = client.create_schedule(schedule_name, spec)
            except CerebelumError as exc:
                _fail(str(exc))
            console.print(Text(f"schedule/{created.name} created; next fire {_at(created.next_fire)}"))


def _timing(schedule: Schedule) -> str:
    spec = schedule.spec
    if "cron" in spec:
        return f"{spec['cron']} ({spec.get('timezone', 'UTC')})"
    shifted = f" +{spec['offset']}" if "offset" in spec else ""
    return f"every {spec.get('interval')}{shifted}"


def _at(moment: datetime | None) -> str:
    return "-" if moment is None else rfc3339(moment)


def _local(moment: datetime | None, schedule: Schedule) -> str:
    """RFC 3339 in UTC, and in the schedule's own time zone when that is another one."""
    if moment is None:
        return "-"
    zone = schedule.spec.get("timezone", "UTC")
    if zone == "UTC":
        return rfc3339(moment)
    return f"{rfc3339(moment)} ({moment.astimezone(ZoneInfo(zone)).isoformat()} {zone})"


@schedule_app.command("list")
def list_schedules(output: OutputOption = Output.TABLE, address: AddressOption = DEFAULT_ADDRESS) -> None:
    """List schedules: timing, overlap policy, last and next fire, and what they did."""
    with _client(address) as client:
        try:
            schedules = client.list_schedules()
        except CerebelumError as exc:
            _fail(str(exc))
    if output is not Output.TABLE:
        emit(schedules, output)
        return
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "WORKFLOW", "TIMING", "OVERLAP", "STATE", "LAST FIRE", "NEXT FIRE", "STARTED", "SKIPPED"):
        table.add_column(column)
    for schedule in schedules:
        table.add_row(
            Text(schedule.name),
            Text(schedule.workflow),
            Text(_timing(schedule)),
            Text(str(schedule.spec.get("overlap", "skip"))),
            Text("Paused", style="yellow") if schedule.paused else Text("Active", style="green"),
            _at(schedule.last_fire),
            _at(schedule.next_fire),
            str(schedule.started),
            str(schedule.skipped + schedule.missed),
        )
    console.print(table)


@schedule_app.command("describe")
def describe(name: str, output: OutputOption = Output.TABLE, address: AddressOption = DEFAULT_ADDRESS) -> None:
    """A schedule's spec, last and next fire times (RFC 3339), counts and recent fires."""
    with _client(address) as client:
        try:
            schedule = client.get_schedule(name)
        except CerebelumError as exc:
            _fail(str(exc))
    if output is not Output.TABLE:
        emit(schedule, output)
        return
    spec = schedule.spec
    lines: list[tuple[str, str]] = [
        ("Name", schedule.name),
        ("Workflow", schedule.workflow),
        ("Timing", _timing(schedule)),
        ("Overlap", str(spec.get("overlap", "skip"))),
        ("Catch-up window", str(spec.get("catchupWindow", "1m"))),
        ("Jitter", str(spec.get("jitter", "0s"))),
        ("State", "Paused" if schedule.paused else "Active"),
    ]
    if schedule.paused:
        lines.append(("Note", schedule.note or "-"))
    lines += [
        ("Last fire", _local(schedule.last_fire, schedule)),
        ("Last due time", _local(schedule.last_due, schedule)),
        ("Last execution", schedule.last_execution_id or "-"),
        ("Next fire", _local(schedule.next_fire, schedule)),
        ("Next due time", _local(schedule.next_due, schedule)),
    ]
    if schedule.buffered_due is not None:
        lines.append(("Buffered", _local(schedule.buffered_due, schedule)))
    lines.append(
        (
            "Counts",
            f"started {schedule.started}, skipped {schedule.skipped}, missed {schedule.missed},"
            f" failed {schedule.failed}",
        )
    )
    if "input" in spec:
        lines.append(("Input", json.dumps(spec["input"])))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        console.print(Text(f"{label + ':':<{width + 1}} {printable(value)}"))
    if not schedule.recent:
        return
    console.print()
    table = Table(box=None, header_style="bold", title="Recent fires", title_justify="left")
    for column in ("DUE", "AT", "OUTCOME", "EXECUTION", "REASON"):
        table.add_column(column)
    for fire in schedule.recent:
        outcome = fire.outcome if fire.count == 1 else f"{fire.outcome} x{fire.count}"
        table.add_row(
            _at(fire.due), _at(fire.at), Text(outcome), Text(fire.execution_id or "-"), Text(printable(fire.reason))
        )
    console.print(table)


@schedule_app.command("pause")
def pause(
    name: str,
    note: Annotated[str, typer.Option(help="Why it is paused (shown by describe).")] = "",
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Stop firing until resumed."""
    with _client(address) as client:
        try:
            schedule = client.pause_schedule(name, note=note)
        except CerebelumError as exc:
            _fail(str(exc))
    console.print(Text(f"schedule/{schedule.name} paused"))


@schedule_app.command("resume")
def resume(name: str, address: AddressOption = DEFAULT_ADDRESS) -> None:
    """Fire again from now on (what came due while paused is not caught up)."""
    with _client(address) as client:
        try:
            schedule = client.resume_schedule(name)
        except CerebelumError as exc:
            _fail(str(exc))
    console.print(Text(f"schedule/{schedule.name} resumed; next fire {_at(schedule.next_fire)}"))


@schedule_app.command("trigger")
def trigger(name: str, address: AddressOption = DEFAULT_ADDRESS) -> None:
    """Start the schedule's workflow now, paused or not; prints the execution id."""
    with _client(address) as client:
        try:
            triggered = client.trigger_schedule(name)
        except CerebelumError as exc:
            _fail(str(exc))
    if triggered.schedule.recent and triggered.schedule.recent[-1].outcome == "failed":
        _fail(f"schedule/{name}: the start was refused: {triggered.schedule.recent[-1].reason}")
    console.print(Text(f"execution/{triggered.execution_id} started"))


@schedule_app.command("delete")
def delete(name: str, address: AddressOption = DEFAULT_ADDRESS) -> None:
    """Delete a schedule; the executions it started go on. Exit 1 if there was none."""
    with _client(address) as client:
        try:
            deleted = client.delete_schedule(name)
        except CerebelumError as exc:
            _fail(str(exc))
    if not deleted:
        _fail(f"schedule {name!r} not found")
    console.print(Text(f"schedule/{name} deleted"))
