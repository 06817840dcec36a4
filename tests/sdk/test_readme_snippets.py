"""The Python README's step snippets run as written, on the README's own complete worker."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cerebelum.testing import StepEnvironment

README = Path(__file__).resolve().parents[2] / "worker-sdk" / "python" / "README.md"


def python_block_after(heading: str, *, containing: str = "") -> str:
    section = README.read_text().split(heading, 1)[1]
    blocks: list[str] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    return next(block for block in blocks if containing in block)


# The blocks this module runs as written (tests/docs checks that the README marks them so).
DOC_BLOCKS = [
    python_block_after("## Testing steps"),
    python_block_after("### Heartbeats and cancellation", containing="def export"),
]


def complete_worker() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme_worker"}  # not "__main__": the worker is not run
    exec(python_block_after("## A complete worker"), namespace)
    return namespace


def test_the_testing_snippet_passes_on_the_complete_workers_charge_step() -> None:
    namespace = complete_worker()

    exec(python_block_after("## Testing steps"), namespace)  # its assert is the test


def test_the_export_snippet_writes_its_rows_and_heartbeats_for_each(tmp_path: Path) -> None:
    namespace = complete_worker()
    exec(python_block_after("### Heartbeats and cancellation", containing="def export"), namespace)
    env = StepEnvironment(input={"path": str(tmp_path / "out.txt"), "rows": ["a", "b"]})

    result = env.run(namespace["export"])

    assert result.output == 2
    assert (tmp_path / "out.txt").read_text() == "a\nb\n"
    assert env.heartbeats == [{"row": 0}, {"row": 1}]


def test_the_export_snippet_stops_at_its_next_heartbeat_once_cancelled(tmp_path: Path) -> None:
    namespace = complete_worker()
    exec(python_block_after("### Heartbeats and cancellation", containing="def export"), namespace)
    env = StepEnvironment(input={"path": str(tmp_path / "out.txt"), "rows": ["a", "b", "c"]})
    env.on_heartbeat = lambda progress: env.cancel() if progress == {"row": 1} else None

    result = env.run(namespace["export"])

    assert result.kind == "cancelled"
    assert (tmp_path / "out.txt").read_text() == "a\nb\n"  # row 2's heartbeat raised StepCancelled
    assert env.heartbeats == [{"row": 0}, {"row": 1}]
