"""Every fenced block of the README, docs/ and the SDK READMEs is run by a test, is a file a test
runs, or says why it is not run: a new sample without one of these fails here."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from .blocks import DOCS, NOT_SAMPLES, ROOT, Block, all_blocks, parse

BLOCKS = [block for block in all_blocks() if block.language not in NOT_SAMPLES]


def _ids(blocks: list[Block]) -> list[str]:
    return [block.where for block in blocks]


def test_every_sample_says_how_it_is_covered() -> None:
    uncovered = [f"{b.where} ({b.language or 'no language'})" for b in BLOCKS if b.how is None]
    assert not uncovered, (
        "blocks with no <!-- run: MODULE -->, <!-- same-as: FILE --> or <!-- not-run: WHY --> right before "
        "them (fence output and diagrams as ```text):\n" + "\n".join(uncovered)
    )


def test_every_fenced_block_names_its_language() -> None:
    unnamed = [b.where for b in all_blocks() if not b.language]
    assert not unnamed, "fence these with a language (```text for output and diagrams): " + ", ".join(unnamed)


RUN = [b for b in BLOCKS if b.how == "run"]


@pytest.mark.parametrize("block", RUN, ids=_ids(RUN))
def test_a_block_marked_run_is_among_the_blocks_its_module_runs_as_written(block: Block) -> None:
    path = ROOT / block.what
    assert path.is_file() and path.suffix == ".py", f"{block.where}: no test module {block.what}"
    module = importlib.import_module(".".join(Path(block.what).with_suffix("").parts))
    runs: list[str] = getattr(module, "DOC_BLOCKS", [])
    assert block.text in runs, f"{block.where}: {block.what} does not run this block as written (see its DOC_BLOCKS)"


SAME = [b for b in BLOCKS if b.how == "same-as"]


@pytest.mark.parametrize("block", SAME, ids=_ids(SAME))
def test_a_block_marked_same_as_is_that_file_byte_for_byte_and_a_test_uses_the_file(block: Block) -> None:
    path = ROOT / block.what
    assert path.is_file(), f"{block.where}: no file {block.what}"
    assert block.text == path.read_text(), f"{block.where} differs from {block.what}"
    users = [
        test
        for test in (ROOT / "tests").rglob("*.py")
        if "docs" not in test.relative_to(ROOT / "tests").parts[:1] and path.name in test.read_text()
    ]
    assert users, f"{block.where}: no test outside tests/docs names {path.name}"


NOT_RUN = [b for b in BLOCKS if b.how == "not-run"]


@pytest.mark.parametrize("block", NOT_RUN, ids=_ids(NOT_RUN))
def test_a_block_not_run_says_why(block: Block) -> None:
    assert len(block.what.split()) >= 3, f"{block.where}: say why it is not run, not just {block.what!r}"


def test_a_marker_counts_only_on_the_line_right_before_its_block() -> None:
    text = (
        "<!-- not-run: a reason given here -->\n```sh\nls\n```\n\n"
        "<!-- not-run: too far from its block -->\n\n```sh\npwd\n```\n"
        "```text\noutput\n```\n"
    )
    first, second, output = parse(text, doc="x.md")
    assert (first.how, first.what, first.text, first.line) == ("not-run", "a reason given here", "ls\n", 2)
    assert second.how is None and second.text == "pwd\n"
    assert output.language == "text"


def test_the_docs_checked_are_the_readme_every_doc_but_those_others_test_and_the_sdk_readmes() -> None:
    assert DOCS[0] == "README.md" and DOCS[-2:] == ["worker-sdk/python/README.md", "worker-sdk/typescript/README.md"]
    assert "docs/workers-outside-kubernetes.md" in DOCS and "docs/typescript-sdk.md" not in DOCS
