"""`cerebelum replay`: run workflow code against saved histories, failing on non-determinism.

The check a team runs in CI before it deploys new worker code: save the histories of executions
in flight (`cerebelum history ID -o json > h.json`), then replay each through the new code. The
SDK's replayer is the one its workers use, so what passes here replays there.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from cerebelum.workflow import NonDeterminismError, replay

from .render import Output, console, emit, err_console, printable

__all__ = ["replay_command"]


@dataclass(frozen=True, slots=True)
class Replayed:
    """One history's verdict, as `-o json` prints it."""

    file: str
    ok: bool
    workflow_tasks: int
    commands: int
    error: str | None


def replay_command(
    histories: Annotated[
        list[Path],
        typer.Argument(help="Files written by `cerebelum history ID -o json` (`-` reads one from stdin)."),
    ],
    function: Annotated[
        str,
        typer.Option(
            "--function", "-f", help="The workflow function, as module:name (the module is imported from here)."
        ),
    ],
    output: Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml")] = Output.TABLE,
) -> None:
    """Replay saved histories through workflow code; exit 1 if any disagrees with its history."""
    workflow = _load(function)
    verdicts = [_replay_one(workflow, path) for path in histories]
    if output is Output.TABLE:
        for verdict in verdicts:
            if verdict.ok:
                console.print(
                    Text(
                        printable(
                            f"ok      {verdict.file}: {verdict.workflow_tasks} workflow tasks,"
                            f" {verdict.commands} commands replayed as recorded"
                        )
                    )
                )
            else:
                console.print(
                    Text.assemble(("FAILED", "red"), f"  {printable(verdict.file)}: {printable(verdict.error or '')}")
                )
    else:
        emit(verdicts, output)
    if not all(verdict.ok for verdict in verdicts):
        raise typer.Exit(1)


def _load(reference: str) -> Any:
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        _fail(f"--function {reference!r}: write it as module:name, such as my_worker:provision")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: any error it raises is theirs to see
        _fail(f"--function {reference!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}")
    found = getattr(module, attribute, None)
    if found is None:
        _fail(f"--function {reference!r}: module {module_name!r} has no {attribute!r}")
    return found


def _replay_one(workflow: Any, path: Path) -> Replayed:
    name = "<stdin>" if str(path) == "-" else str(path)
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        history = _history(text)
    except (OSError, ValueError) as exc:
        return Replayed(name, False, 0, 0, f"cannot read a history: {exc}")
    if not isinstance(history, list):
        return Replayed(
            name,
            False,
            0,
            0,
            "a history is the JSON array `cerebelum history ID -o json` writes, or the JSON lines of an export",
        )
    try:
        result = replay(workflow, history, execution_id=_execution_id(history))
    except NonDeterminismError as exc:
        return Replayed(name, False, 0, 0, str(exc))
    except Exception as exc:  # a history that is not one, or code that fails outside its workflow
        return Replayed(name, False, 0, 0, f"{type(exc).__name__}: {exc}")
    return Replayed(name, True, result.activations, len(result.commands), None)


def _history(text: str) -> Any:
    """A JSON array of events, or JSON lines of them (an execution the retention period exported)."""
    try:
        return json.loads(text)
    except ValueError:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2:
            raise
        return [json.loads(line) for line in lines]


def _execution_id(history: list[Any]) -> str:
    """The run's id, which seeds the code's random numbers and UUIDs: its workflow tasks' tokens
    begin with it (``<execution>/@workflow/<attempt>/<poll>/<seq>``)."""
    for event in history:
        token = (event.get("data") or {}).get("token") if isinstance(event, dict) else None
        if isinstance(token, str) and "/@workflow/" in token:
            return token.rsplit("/", 4)[0]
    return ""


def _fail(message: str) -> Any:
    err_console.print(Text.assemble(("error:", "red"), f" {printable(message)}"))
    raise typer.Exit(2)
