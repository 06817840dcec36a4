"""The SDK README's complete worker: under 30 lines, type-checks strictly, and runs as shown."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from cerebelum import Client

from .conftest import PACKAGE, WorkerProcess, Workers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

README = PACKAGE / "README.md"


def complete_worker() -> str:
    section = README.read_text().split("## A complete worker", 1)[1]
    match = re.search(r"```ts\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README's 'A complete worker' section has no ts block"
    return match.group(1)


DOC_BLOCKS = [complete_worker()]  # run as written below (tests/docs checks the README marks it so)


def build_example(tmp_name: str) -> Path:
    """Compile the README's worker with the package's strict settings; return the .js path."""
    folder = PACKAGE / "build" / tmp_name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "worker.ts").write_text(complete_worker())
    (folder / "tsconfig.json").write_text(
        '{"extends": "../../tsconfig.json", "compilerOptions": {"rootDir": ".", "outDir": "out", "declaration": false},'
        ' "include": ["worker.ts"]}\n'
    )
    result = subprocess.run(
        [str(PACKAGE / "node_modules" / ".bin" / "tsc"), "-p", str(folder / "tsconfig.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return folder / "out" / "worker.js"


def test_the_readme_shows_a_complete_worker_in_under_30_lines() -> None:
    lines = complete_worker().strip().splitlines()
    assert len(lines) < 30
    assert lines[0].startswith("import ") and "@cerebelum/worker" in lines[0]
    assert lines[-1].startswith("await worker.run()")


def test_the_readme_worker_type_checks_and_runs_an_execution_to_succeeded(
    node: str, workers: Workers, client: Client, tmp_path: Path
) -> None:
    script = build_example("readme")
    worker = WorkerProcess([node, str(script)], workers.address, workers.ledger, tmp_path / "readme.log", "orders")
    workers.started.append(worker.start())
    client.apply_workflow("orders", {"taskQueue": "orders", "timeline": ["charge", "send-receipt"]})
    paid = client.start("orders", {"id": "o-1", "amount": 42})
    free = client.start("orders", {"id": "o-2", "amount": 0})
    done = client.wait(paid.id, timeout=60)
    assert done.phase == "Succeeded", done.error
    assert done.output == f"receipt for o-1 ({paid.id}/send-receipt/1)"
    refused = client.wait(free.id, timeout=60)
    assert refused.phase == "Failed"
    failed = [e.data for e in client.history(free.id) if e.type == "StepFailed"]
    assert [(f["error_type"], f["attempt"]) for f in failed] == [("NonRetryableError", 1)]
    assert worker.terminate() == 0, worker.log()
