"""docs/cli.md against the `cerebelum` command itself: every command has a row, every option of
it is named there (or, for `operator`, in kubernetes.md's options), and the doc names no command
or option the CLI does not have."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer

from cerebelum_operator.cli.main import app

from .blocks import ROOT

CLI_DOC = (ROOT / "docs" / "cli.md").read_text()
# Every command but dev and operator talks to an engine: the doc says so once, above the table.
INTRO = CLI_DOC.split("| command |", 1)[0]
OPERATOR_OPTIONS = (ROOT / "docs" / "kubernetes.md").read_text().split("## Operator options", 1)[1]


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from commands(sub, (*path, name))
    else:
        yield " ".join(("cerebelum", *path)), command


COMMANDS = dict(commands(typer.main.get_command(app)))


def rows() -> dict[str, str]:
    """Each `cerebelum ...` command shown in the table's first column, with its whole row."""
    found: dict[str, str] = {}
    for line in CLI_DOC.splitlines():
        if not line.startswith("| `cerebelum"):
            continue
        first = re.split(r"(?<!\\)\|", line)[1]
        for usage in re.findall(r"`(cerebelum [^`]*)`", first):
            words = list(itertools.takewhile(lambda word: re.fullmatch(r"[a-z][a-z-]*", word), usage.split()))
            found[" ".join(words)] = line
    return found


ROWS = rows()


def names(option: Any) -> list[str]:
    return [*option.opts, *option.secondary_opts]


def mentioned(flag: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_and_each_of_its_options_is_in_the_cli_reference(name: str) -> None:
    assert name in ROWS, f"docs/cli.md has no row for `{name}`"
    text = ROWS[name] + (OPERATOR_OPTIONS if name == "cerebelum operator" else "")
    text += INTRO if name not in ("cerebelum dev", "cerebelum operator") else ""
    options = [p for p in COMMANDS[name].params if type(p).__name__.endswith("Option")]
    missing = [
        "/".join(names(option))
        for option in options
        if "--help" not in names(option) and not any(mentioned(flag, text) for flag in names(option))
    ]
    assert not missing, f"docs/cli.md's `{name}` does not mention {missing}"


def test_the_cli_reference_names_only_commands_and_options_the_cli_has() -> None:
    unknown = sorted(set(ROWS) - set(COMMANDS))
    assert not unknown, f"docs/cli.md shows commands the CLI does not have: {unknown}"
    for name, row in ROWS.items():
        first = re.split(r"(?<!\\)\|", row)[1]
        usage = " ".join(u for u in re.findall(r"`(cerebelum [^`]*)`", first) if u.startswith(name + " ") or u == name)
        flags = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", usage))
        known = {
            flag for p in COMMANDS[name].params for flag in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])
        }
        assert flags <= known, f"docs/cli.md's `{name}` shows options it does not have: {sorted(flags - known)}"
