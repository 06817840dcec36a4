"""docs/workflow-reference.md's "What each CEL expression can see" is model/cel_check.py's table.

The check refuses by that table, so the reference must say exactly the same: the names each
expression sees, the functions and methods there are, and the type names.
"""

from __future__ import annotations

import re
from pathlib import Path

from cerebelum_operator.model.cel_check import (
    EXPRESSION_VARIABLES,
    FUNCTIONS,
    METHODS,
    NAMESPACED_FUNCTIONS,
    TYPE_NAMES,
)

REFERENCE = Path(__file__).resolve().parents[3] / "docs" / "workflow-reference.md"
PLACES = {
    "branch": "branch.<step>[i].when",
    "diverge": "diverge.<step>[i].when",
    "output": "output",
    "timer": "steps.<step>.timer.until",
    "when": "steps.<step>.when",
    "set": "steps.<step>.set.<variable>",
    "args": "steps.<step>.args.<name>",
    "items": "steps.<step>.forEach.items",
    "itemArgs": "steps.<step>.args.<name> (forEach)",
    "startInput": "steps.<step>.child.input",
    "flowControl": "flowControl.key, flowControl.priority",
}


def section() -> str:
    text = REFERENCE.read_text()
    start = text.index("### What each CEL expression can see\n")
    end = text.find("\n### ", start + 1)
    return text[start : end if end > 0 else None]


def test_the_references_table_lists_for_each_expression_the_names_the_check_lets_it_see() -> None:
    rows = re.findall(r"^\| `([^`]+)` \| (.+) \|$", section(), re.MULTILINE)

    documented = {place: tuple(re.findall(r"`(\w+)`", names)) for place, names in rows}

    assert documented == {PLACES[construct]: tuple(sorted(names)) for construct, names in EXPRESSION_VARIABLES.items()}


def test_the_reference_names_every_function_method_and_type_name_the_check_allows() -> None:
    text = section()
    named = set(re.findall(r"`[^`]*?\b([A-Za-z_][\w.]*)\(", text)) | set(re.findall(r"\.(\w+)\(", text))

    missing = (set(FUNCTIONS) | set(NAMESPACED_FUNCTIONS) | set(METHODS)) - named
    assert not missing, f"allowed but not in the reference: {sorted(missing)}"
    assert all(f"`{name}`" in text for name in TYPE_NAMES)
