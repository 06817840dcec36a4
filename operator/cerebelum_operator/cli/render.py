"""Human-readable output: tables and the history timeline."""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from datetime import UTC, datetime
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..engine.ids import next_run_id

__all__ = [
    "Output",
    "console",
    "emit",
    "err_console",
    "execution_table",
    "history_table",
    "printable",
    "rfc3339",
    "show_execution",
    "to_document",
    "when",
]

# User text (errors, names, payloads) is never markup: "[/path]" in an error message must print as
# written, not crash the command. Styles are given as Text objects instead.
console = Console(width=None if Console().is_terminal else 160, markup=False, highlight=False, emoji=False)
# Notes for the person at the terminal (progress, "more rows exist"): never mixed into what scripts parse.
err_console = Console(stderr=True, soft_wrap=True, markup=False, highlight=False, emoji=False)

_PHASE_STYLE = {
    "Succeeded": "green",
    "Failed": "red",
    "Cancelled": "yellow",
    "WaitingForApproval": "magenta",
    "WaitingForSignal": "magenta",
    "ContinuedAsNew": "cyan",
    "Sleeping": "cyan",
    "Running": "blue",
}


class Output(enum.StrEnum):
    """What `-o` accepts; typer refuses anything else, naming the choices."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def rfc3339(value: datetime) -> str:
    """UTC with milliseconds and a `Z`: what scripts and other tools parse without guessing."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_document(value: Any) -> Any:
    """A client model as plain JSON data: camelCase keys, times in RFC 3339, nothing left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_camel(field.name): to_document(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, dict):
        return {str(key): to_document(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_document(item) for item in value]
    return value


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def emit(value: Any, output: Output) -> None:
    """Print `value` as JSON or YAML for scripts (plain stdout, never styled or wrapped)."""
    document = to_document(value)
    if output is Output.YAML:
        print(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), end="")
    else:
        print(json.dumps(document, indent=2, ensure_ascii=False))


def when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def age(value: datetime | None) -> str:
    if value is None:
        return "-"
    seconds = int((datetime.now(UTC) - value).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def phase(text: str) -> Text:
    return Text(text, style=_PHASE_STYLE.get(text, ""))


def compact(value: Any, limit: int = 80) -> str:
    if value is None:
        return ""
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def execution_table(executions: list[Any]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("ID", "WORKFLOW", "PHASE", "CURRENT STEP", "AGE"):
        table.add_column(column)
    for execution in executions:
        table.add_row(
            execution.id,
            execution.workflow,
            phase(execution.phase),
            ",".join(execution.current_steps) or "-",
            age(execution.created_at),
        )
    return table


# Control characters other than newline and tab, shown escaped: a worker's text must not move the
# cursor or recolour the terminal (Rich drops a few, such as BEL and CR, but passes ESC sequences).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def _show_stacktraces(execution: Any, *, every_step: bool) -> None:
    """The stack trace of each step's last failure: of failed and retrying steps, or of all with `every_step`."""
    for step in execution.steps:
        trace = step.last_stacktrace
        if not trace or not (every_step or step.phase in ("Failed", "Retrying")):
            continue
        console.print()
        console.print(
            Text.assemble(
                ("Stack trace", "bold"),
                f" of step {step.name}, last failure: ",
                (printable(step.last_error or ""), "red"),
            )
        )
        console.print(Text(printable(trace.rstrip("\n"))), soft_wrap=True)


def show_execution(execution: Any, *, stacktraces: bool = False) -> None:
    console.print(Text.assemble(("Execution", "bold"), f" {execution.id}"))
    console.print(f"  Workflow:  {execution.workflow}")
    console.print(Text.assemble("  Phase:     ", phase(execution.phase)))
    console.print(f"  Created:   {when(execution.created_at)}")
    console.print(f"  Updated:   {when(execution.updated_at)}")
    if execution.wake_at is not None:
        console.print(f"  Wakes at:  {when(execution.wake_at)}")
    if execution.ending is not None:
        console.print(f"  Ending:    as {execution.ending}, once its compensation and finally steps ran")
    if execution.deadline is not None:
        console.print(f"  Deadline:  {when(execution.deadline)} (the workflow's timeout)")
    _show_links(execution)
    console.print(f"  Events:    {execution.event_count}")
    console.print(f"  Input:     {compact(execution.input)}")
    if execution.vars is not None:
        console.print(Text(printable(f"  Variables: {compact(execution.vars)}")))
    if execution.output is not None:
        console.print(f"  Output:    {compact(execution.output)}")
    if execution.error:
        console.print(Text.assemble("  Error:     ", (printable(execution.error), "red")))
    if execution.steps:
        table = Table(box=None, header_style="bold", title="Steps", title_justify="left")
        for column in ("STEP", "PHASE", "ATTEMPTS", "STARTED", "FINISHED", "LAST ERROR"):
            table.add_column(column)
        for step in execution.steps:
            table.add_row(
                step.name,
                phase(step.phase),
                str(step.attempts),
                when(step.started_at),
                when(step.finished_at),
                printable(step.last_error or ""),
            )
        console.print(table)
        for step in execution.steps:  # Text, never markup: progress and hints carry user text
            if step.progress is not None:
                console.print(Text(printable(f"  Progress of {step.name}: {compact(step.progress, 200)}")))
            if step.waiting_hint:
                console.print(Text(printable(f"  Step {step.name} waits: {step.waiting_hint}"), style="yellow"))
            if step.items is not None:
                items = step.items
                failed = f", {items.failed:,} failed" if items.failed else ""
                console.print(
                    Text(
                        printable(
                            f"  Items of {step.name}: {items.done:,} of {items.total:,} done{failed},"
                            f" {items.in_flight:,} in flight"
                        )
                    )
                )
    for cut in execution.jump_limits:  # Text, never markup: names come from the spec
        again = f", refused {cut.times} times" if cut.times > 1 else ""
        console.print(
            Text(
                printable(
                    f"  Loop cut: {cut.rule} stopped jumping from {cut.step} back to {cut.target}"
                    f" after {cut.bound} (maxIterations){again}"
                ),
                style="yellow",
            )
        )
    _show_signals(execution)
    for approval in execution.pending_approvals:
        timeout = f", times out {when(approval.timeout_at)}" if approval.timeout_at else ""
        console.print(
            Text.assemble(
                ("Waiting for approval", "magenta"),
                f" of step {approval.step} ({printable(approval.kind)}{timeout}):",
                f" cerebelum approve {execution.id} {approval.step}",
            )
        )
    _show_stacktraces(execution, every_step=stacktraces)


MAX_CHILDREN_SHOWN = 20  # the latest; `-o json` has them all
MAX_SIGNALS_SHOWN = 20  # the oldest queued, the ones the next signal steps take


def _show_links(execution: Any) -> None:
    """Its place in a continue-as-new chain, and its parent. Text, never markup: ids are the user's."""
    if execution.run > 1 or execution.continued_as:
        where = f"  Run:       {execution.run} of the chain {execution.first_run_id}"
        if execution.continued_from:
            where += f" (continued from {execution.continued_from})"
        if execution.continued_as:
            where += f"; continued as {execution.continued_as}"
        console.print(Text(printable(where)))
        console.print(Text(printable(f"  Runs:      {_runs(execution)}")))
    if execution.parent_id:
        console.print(Text(printable(f"  Parent:    {execution.parent_id} (its step {execution.parent_step})")))
    error = execution.workflow_task_error
    if error:
        console.print(
            Text.assemble(
                ("  Workflow task failing: ", "red"),
                printable(error),
                " (retried until one completes: deploy fixed worker code; `cerebelum replay` checks it)",
            )
        )


def _runs(execution: Any) -> str:
    """The chain's runs up to this one (and the next, if it continued): their ids are deterministic."""
    last = execution.run + (1 if execution.continued_as else 0)
    numbers = list(range(1, last + 1))
    if len(numbers) > 6:
        numbers = [1, 0, *numbers[-4:]]  # 0: the runs left out
    first = execution.first_run_id
    names = [first if n == 1 else "…" if n == 0 else next_run_id(first, n) for n in numbers]
    return ", ".join(names)


def _show_signals(execution: Any) -> None:
    """Children, steps waiting for a signal and the signals queued, each a line of plain text."""
    children = execution.children
    if children:
        table = Table(box=None, header_style="bold", title="Children", title_justify="left")
        for column in ("STEP", "CHILD", "WORKFLOW", "PHASE"):
            table.add_column(column)
        for child in children[-MAX_CHILDREN_SHOWN:]:
            table.add_row(printable(child.step), printable(child.id), printable(child.workflow), phase(child.phase))
        console.print(table)
        if len(children) > MAX_CHILDREN_SHOWN:
            console.print(f"  ({len(children) - MAX_CHILDREN_SHOWN:,} earlier children: -o json lists them all)")
    for wait in execution.signal_waits:
        timeout = f", times out {when(wait.timeout_at)}" if wait.timeout_at else ""
        console.print(
            Text.assemble(
                ("Waiting for signal", "magenta"),
                printable(f" {wait.name} at step {wait.step}{timeout}: cerebelum signal {execution.id} {wait.name}"),
            )
        )
    queued = execution.queued_signals
    for signal in queued[:MAX_SIGNALS_SHOWN]:
        line = f"  Queued signal {signal.name} from {signal.sender or 'anonymous'} at {when(signal.received_at)}:"
        console.print(Text(printable(f"{line} {compact(signal.data, 80)}")))
    if len(queued) > MAX_SIGNALS_SHOWN:
        console.print(f"  ({len(queued) - MAX_SIGNALS_SHOWN:,} more queued signals: -o json lists them all)")


def _event_detail(event_type: str, data: dict[str, Any]) -> str:
    skip = {"step", "token", "timer_id", "spec_hash", "visible_at_ms", "task_queue", "timeout_at_ms", "wake_at_ms"}
    parts = [f"{k}={compact(v, 60)}" for k, v in data.items() if k not in skip and v not in (None, False, "")]
    trace = data.get("stacktrace")
    if isinstance(trace, str) and trace:  # too long for a row: describe and -o json show it whole
        parts = [part for part in parts if not part.startswith("stacktrace=")]
        parts.append(f"stacktrace=({trace.count(chr(10)) + 1} lines)")
    return printable(" ".join(parts))


def history_table(events: list[Any]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("SEQ", "TIME", "+MS", "EVENT", "STEP"):
        table.add_column(column, no_wrap=True)
    table.add_column("DETAIL", overflow="fold")
    first = events[0].at if events else None
    for event in events:
        offset = int((event.at - first).total_seconds() * 1000) if first and event.at else 0
        data = event.data or {}
        table.add_row(
            str(event.seq),
            when(event.at)[11:],
            str(offset),
            event.type,
            str(data.get("step") or ""),
            _event_detail(event.type, data),
        )
    return table
