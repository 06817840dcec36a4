"""The commands a code workflow's worker returns, checked and normalised before `decide` records them.

Pure. A command list is refused whole, with a message naming the command and the problem: the
workflow task then fails and runs again (a fixed deployment completes it), and nothing of the
list is recorded. Checked here:

- each waiting command's ``id`` is the next one the history expects, so a worker whose replay
  disagrees with the history (non-determinism the SDK missed, or a bug) can never record a
  command twice or skip one;
- names, options and free text within their limits, a terminal command last;
- each waiting command gets the step name it runs as (``check_droplet#3``), recorded with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..model import CodeCommandInvalid, CodeConfig, code_step_config, limits
from .state import ExecutionState

__all__ = [
    "MAX_COMMANDS_PER_TASK",
    "TERMINAL_COMMANDS",
    "WAITING_COMMANDS",
    "CommandsInvalid",
    "normalise_commands",
]

JSON = Any
MAX_COMMANDS_PER_TASK = 1_000  # what one activation may issue: a fan-out of 1,000 steps
WAITING_COMMANDS = frozenset({"step", "sleep", "approval", "waitSignal", "child", "patch"})
TERMINAL_COMMANDS = frozenset({"complete", "fail", "continueAsNew", "cancelled"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")  # a step name of a YAML workflow
_WORKFLOW = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")  # a Kubernetes object name


class CommandsInvalid(ValueError):
    """The command list cannot be recorded; the message names the command (1-based) and why."""


def normalise_commands(state: ExecutionState, code: CodeConfig, raw: JSON) -> list[dict[str, JSON]]:
    """The commands as they are recorded in ``WorkflowTaskCompleted``; raises CommandsInvalid."""
    if not isinstance(raw, list):
        raise CommandsInvalid(f"the commands are a JSON array, not {type(raw).__name__}")
    if len(raw) > MAX_COMMANDS_PER_TASK:
        raise CommandsInvalid(
            f"{len(raw)} commands in one workflow task, over the limit of {MAX_COMMANDS_PER_TASK}:"
            " start the work in batches (await some before issuing more), or in a child workflow"
        )
    expected = state.next_command_id
    taken: set[str] = set()  # step names given in this list
    normalised: list[dict[str, JSON]] = []
    for index, command in enumerate(raw, start=1):
        where = f"command {index}"
        if not isinstance(command, Mapping):
            raise CommandsInvalid(f"{where}: a command is a JSON object")
        kind = command.get("type")
        if normalised and normalised[-1]["type"] in TERMINAL_COMMANDS:
            raise CommandsInvalid(f"{where}: nothing may follow {normalised[-1]['type']!r}, which ends the execution")
        try:
            if kind in WAITING_COMMANDS:
                given = command.get("id")
                if given != expected or isinstance(given, bool):
                    raise CommandsInvalid(
                        f"{where} ({kind}) has id {given!r} where the history expects {expected}: the worker's"
                        " replay disagrees with the history (non-determinism), or its SDK numbered the commands"
                        " wrong"
                    )
                entry = _waiting(state, code, kind, expected, command, taken)
                expected += 1
            elif kind in TERMINAL_COMMANDS:
                entry = _terminal(kind, command)
            else:
                known = ", ".join(sorted(WAITING_COMMANDS | TERMINAL_COMMANDS))
                raise CommandsInvalid(f"{where}: unknown command type {kind!r} (known: {known})")
        except CodeCommandInvalid as exc:
            raise CommandsInvalid(f"{where} ({kind}): {exc}") from None
        except CommandsInvalid as exc:
            if str(exc).startswith(where):
                raise
            raise CommandsInvalid(f"{where} ({kind}): {exc}") from None
        normalised.append(entry)
    return normalised


def _waiting(
    state: ExecutionState, code: CodeConfig, kind: str, id: int, command: Mapping[str, JSON], taken: set[str]
) -> dict[str, JSON]:
    entry: dict[str, JSON] = {"type": kind, "id": id}
    if kind == "patch":
        entry["patch"] = _text(command.get("patch"), "patch", limit=limits.MAX_SIGNAL_NAME)
        return entry
    if kind == "step":
        function = _name(command.get("function"), "function")
        entry |= {"function": function, "args": command.get("args")}
        options = command.get("options")
        if options:
            entry["options"] = options
        step = f"{function}#{id}"
    elif kind == "sleep":
        entry["duration"] = command.get("duration")
        step = f"sleep#{id}"
    elif kind == "approval":
        name = _name(command.get("name"), "name")
        entry |= {"name": name, "data": command.get("data")}
        # Approved by its own name, as a YAML approval step, unless that name is taken already.
        step = name if name not in state.steps and name not in taken else f"{name}#{id}"
    elif kind == "waitSignal":
        name = _name(command.get("name"), "name")
        entry["name"] = name
        step = f"signal.{name}#{id}"
    else:  # child
        workflow = command.get("workflow")
        if not isinstance(workflow, str) or not _WORKFLOW.match(workflow):
            raise CommandsInvalid(f"workflow: {workflow!r} is not a Workflow name")
        entry |= {"workflow": workflow, "input": command.get("input")}
        if command.get("onParentCancel") is not None:
            entry["onParentCancel"] = command.get("onParentCancel")
        step = f"child.{workflow}#{id}"
    if kind in ("approval", "waitSignal") and command.get("timeout") is not None:
        entry["timeout"] = command.get("timeout")
    entry["step"] = step
    taken.add(step)
    code_step_config(code, step, kind, entry)  # refuses bad options now, before anything is recorded
    return entry


def _terminal(kind: str, command: Mapping[str, JSON]) -> dict[str, JSON]:
    if kind == "complete":
        return {"type": kind, "output": command.get("output")}
    if kind == "continueAsNew":
        return {"type": kind, "input": command.get("input")}
    if kind == "cancelled":
        return {"type": kind, "message": str(command.get("message") or "")[: limits.MAX_REASON]}
    error_type = str(command.get("errorType") or "Error")[: limits.MAX_ERROR_TYPE]
    return {
        "type": kind,
        "errorType": error_type,
        "message": str(command.get("message") or "")[: limits.MAX_MESSAGE],
        "stacktrace": limits.cut_middle(
            str(command.get("stacktrace") or ""), limit=limits.MAX_STACKTRACE, what="stack trace"
        ),
    }


def _name(value: JSON, field: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise CommandsInvalid(
            f"{field}: {value!r} is not a name (a letter or _, then letters, digits, _ . -, at most 63 characters)"
        )
    return value


def _text(value: JSON, field: str, *, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise CommandsInvalid(f"{field}: text of 1 to {limit} characters, not {value!r}")
    return value
