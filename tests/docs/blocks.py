"""The fenced code blocks of the user-facing docs, with the marker that says how each is covered.

A block is covered in one of three ways, said by an HTML comment on the line right before it:

- ``<!-- run: tests/x/test_y.py -->``: that test module runs it; the module lists the blocks it
  runs in ``DOC_BLOCKS`` (computed from the docs when it is imported), so a block it no longer
  runs, or runs from an older text, is caught.
- ``<!-- same-as: examples/provision/workflow.yaml -->``: the block is that file, byte for byte,
  and a test runs the file.
- ``<!-- not-run: why -->``: not run, for the reason given.

Blocks fenced as ``text`` (diagrams, and output that the block before it prints) are not samples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOCS", "NOT_SAMPLES", "ROOT", "Block", "all_blocks", "blocks_in", "marked_for", "parse"]

ROOT = Path(__file__).resolve().parents[2]

# Written by other engineers' tests and harnesses of their own.
EXCLUDED = frozenset({"docs/typescript-sdk.md", "docs/testing.md"})

NOT_SAMPLES = frozenset({"text"})

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_MARKER = re.compile(r"^<!--\s*(run|same-as|not-run):\s*(.*?)\s*-->$")


def docs() -> list[str]:
    """README.md, every docs/*.md but those excluded, and the SDK READMEs (paths from the root)."""
    paths = ["README.md"]
    paths += sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in EXCLUDED)
    paths += ["worker-sdk/python/README.md", "worker-sdk/typescript/README.md"]
    return paths


DOCS = docs()


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text and how it says it is covered."""

    doc: str
    line: int  # of the opening fence, from 1
    language: str
    text: str
    how: str | None  # "run", "same-as", "not-run" or None (no marker)
    what: str  # the marker's argument: a test module, a file, or a reason

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks_in(doc: str) -> list[Block]:
    return parse((ROOT / doc).read_text(), doc=doc)


def parse(text: str, *, doc: str) -> list[Block]:
    """The fenced blocks of a markdown text; a marker counts only on the line right before a fence."""
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()]
        line = before.count("\n") + 1
        previous = before.rstrip("\n").rsplit("\n", 1)[-1].strip()
        marker = _MARKER.match(previous) if before.endswith("\n") and not before.endswith("\n\n") else None
        blocks.append(
            Block(
                doc=doc,
                line=line,
                language=match.group(1).strip(),
                text=match.group(2),
                how=marker.group(1) if marker else None,
                what=marker.group(2) if marker else "",
            )
        )
    return blocks


def all_blocks() -> list[Block]:
    return [block for doc in DOCS for block in blocks_in(doc)]


def marked_for(module_file: str) -> list[Block]:
    """The blocks whose marker says this test module runs them."""
    relative = Path(module_file).resolve().relative_to(ROOT).as_posix()
    return [block for block in all_blocks() if block.how == "run" and block.what == relative]
