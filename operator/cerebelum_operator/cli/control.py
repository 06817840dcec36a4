"""`cerebelum pause`, `resume`, `reset` and `bulk`: hold executions, let them go, run one again
from a step, act on many at once.

`pause ID` and `resume ID` act on one execution and print it; with a query (`--workflow`,
`--phase`, or `--all`) instead of ids they act on every execution it matches, like
`bulk ACTION`, which also cancels and redrives. A bulk action prints one line per execution and
exits 1 when any failed; `--dry-run` lists what it would act on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from cerebelum import CerebelumError, Execution
from cerebelum.operations import BulkResult

from .common import DEFAULT_ADDRESS, AddressOption, OutputOption, client, fail
from .render import Output, console, emit, printable

__all__ = ["control_commands"]

WorkflowOption = Annotated[str | None, typer.Option(help="Every execution of this workflow (with --phase: in it).")]
PhaseOption = Annotated[str | None, typer.Option(help="Every execution in this phase (Running, Failed, ...).")]
AllOption = Annotated[bool, typer.Option("--all", help="Every execution: a query with no filter must say so.")]
LimitOption = Annotated[int, typer.Option(help="At most this many, newest first (up to 10,000).")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="List what would be acted on; change nothing.")]
ReasonOption = Annotated[str, typer.Option(help="Why: recorded in the history (pause, cancel).")]
IdsArgument = Annotated[list[str] | None, typer.Argument(help="Execution ids (or use a query).", show_default=False)]


def pause_command(
    ids: IdsArgument = None,
    reason: ReasonOption = "paused from the CLI",
    workflow: WorkflowOption = None,
    phase: PhaseOption = None,
    everything: AllOption = False,
    limit: LimitOption = 1000,
    dry_run: DryRunOption = False,
    output: OutputOption = Output.TABLE,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Hold executions: they start nothing new until resumed; steps already running finish."""
    if _single(ids, workflow, phase, everything, dry_run):
        assert ids is not None
        _one(lambda c: c.pause(ids[0], reason=reason), output, address)
        return
    _bulk("pause", ids, workflow, phase, everything, limit, reason, dry_run, output, address)


def resume_command(
    ids: IdsArgument = None,
    workflow: WorkflowOption = None,
    phase: PhaseOption = None,
    everything: AllOption = False,
    limit: LimitOption = 1000,
    dry_run: DryRunOption = False,
    output: OutputOption = Output.TABLE,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Lift a pause: the steps it held start, in the order they were reached."""
    if _single(ids, workflow, phase, everything, dry_run):
        assert ids is not None
        _one(lambda c: c.resume(ids[0]), output, address)
        return
    _bulk("resume", ids, workflow, phase or "Paused", everything, limit, "", dry_run, output, address)


def bulk_command(
    action: Annotated[str, typer.Argument(help="cancel, pause, resume or redrive (every open dead letter).")],
    ids: IdsArgument = None,
    reason: ReasonOption = "",
    workflow: WorkflowOption = None,
    phase: PhaseOption = None,
    everything: AllOption = False,
    limit: LimitOption = 1000,
    dry_run: DryRunOption = False,
    output: OutputOption = Output.TABLE,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Cancel, pause, resume or redrive many executions: by id, or every one a query matches."""
    _bulk(action, ids, workflow, phase, everything, limit, reason, dry_run, output, address)


def reset_command(
    execution_id: Annotated[str, typer.Argument(help="The execution to reset.")],
    step: Annotated[str, typer.Argument(help="The step of the timeline the new run starts at.")],
    new_id: Annotated[str | None, typer.Option(help="The new execution's id (default: <id>-reset-<random>).")] = None,
    reason: ReasonOption = "",
    output: OutputOption = Output.TABLE,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Run an execution again from a step: a new execution on the workflow's current spec that keeps
    the results of the steps before it; the old one is cancelled if it still runs."""
    try:
        execution = client(address).reset(execution_id, step, new_id=new_id, reason=reason)
    except CerebelumError as exc:
        fail(str(exc))
    if output is not Output.TABLE:
        emit(execution, output)
        return
    console.print(
        Text(printable(f"execution/{execution.id} started at step {step} from {execution_id}; now {execution.phase}"))
    )


def pause_workflow_command(
    name: Annotated[str, typer.Argument(help="The workflow.")],
    reason: ReasonOption = "",
    output: OutputOption = Output.TABLE,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Pause a workflow: its new executions start held (Paused) until resumed; running ones go on."""
    try:
        workflow = client(address).pause_workflow(name, reason=reason)
    except CerebelumError as exc:
        fail(str(exc))
    if output is not Output.TABLE:
        emit(workflow, output)
        return
    console.print(Text(printable(f"workflow/{workflow.name} paused: new executions wait until it is resumed")))


def resume_workflow_command(
    name: Annotated[str, typer.Argument(help="The workflow.")],
    output: OutputOption = Output.TABLE,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Resume a paused workflow: the executions its pause held go on."""
    try:
        workflow = client(address).resume_workflow(name)
    except CerebelumError as exc:
        fail(str(exc))
    if output is not Output.TABLE:
        emit(workflow, output)
        return
    console.print(Text(printable(f"workflow/{workflow.name} resumed")))


control_commands: dict[str, Callable[..., None]] = {
    "pause": pause_command,
    "resume": resume_command,
    "reset": reset_command,
    "pause-workflow": pause_workflow_command,
    "resume-workflow": resume_workflow_command,
    "bulk": bulk_command,
}


def _single(ids: list[str] | None, workflow: str | None, phase: str | None, everything: bool, dry_run: bool) -> bool:
    return bool(ids) and len(ids or []) == 1 and not (workflow or phase or everything or dry_run)


def _one(call: Callable[[Any], Execution], output: Output, address: str) -> None:
    try:
        execution = call(client(address))
    except CerebelumError as exc:
        fail(str(exc))
    if output is not Output.TABLE:
        emit(execution, output)
        return
    held = "; ".join(f"{p.reason} (by {p.by or 'anonymous'})" for p in execution.pauses)
    console.print(Text(printable(f"execution/{execution.id} {execution.phase}" + (f": {held}" if held else ""))))


def _bulk(
    action: str,
    ids: list[str] | None,
    workflow: str | None,
    phase: str | None,
    everything: bool,
    limit: int,
    reason: str,
    dry_run: bool,
    output: Output,
    address: str,
) -> None:
    try:
        result = client(address).bulk(
            action,
            ids=ids,
            workflow=workflow,
            phase=phase,
            everything=everything,
            limit=limit,
            reason=reason,
            dry_run=dry_run,
        )
    except CerebelumError as exc:
        fail(str(exc))
    if output is not Output.TABLE:
        emit({"outcomes": result.outcomes, "truncated": result.truncated}, output)
    else:
        _print(action, result, dry_run=dry_run)
    if any(outcome.result == "failed" for outcome in result.outcomes):
        raise typer.Exit(1)


def _print(action: str, result: BulkResult, *, dry_run: bool) -> None:
    if not result.outcomes:
        console.print("no executions matched")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("EXECUTION", "RESULT", "ERROR"):
        table.add_column(column)
    for outcome in result.outcomes:
        shown = "would " + action if dry_run else outcome.result
        table.add_row(Text(printable(outcome.id)), shown, Text(printable(outcome.error or "")))
    console.print(table)
    counts = {kind: sum(1 for o in result.outcomes if o.result == kind) for kind in ("done", "unchanged", "failed")}
    summary = (
        f"{len(result.outcomes)} would be acted on"
        if dry_run
        else f"{counts['done']} done, {counts['unchanged']} unchanged, {counts['failed']} failed"
    )
    if result.truncated:
        summary += f"; more matched than --limit {len(result.outcomes)}: run again to reach them"
    console.print(summary)
