"""The TypeScript SDK README's `new Worker({...})` options, as written after the import it needs:
they type-check under the package's strict settings and build a Worker (it connects only when run)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .blocks import ROOT, marked_for

pytestmark = pytest.mark.timeout(120)

PACKAGE = ROOT / "worker-sdk" / "typescript"
BLOCKS = marked_for(__file__)
DOC_BLOCKS = [block.text for block in BLOCKS]  # tests/docs/test_coverage.py: each is run below


def options_block() -> str:
    (found,) = [
        b.text for b in BLOCKS if b.doc == "worker-sdk/typescript/README.md" and b.text.startswith("new Worker(")
    ]
    return found


def test_every_block_marked_for_this_module_has_a_test_here() -> None:
    assert [options_block()] == DOC_BLOCKS


def test_the_worker_options_sample_type_checks_strictly_and_builds_a_worker(tmp_path: Path) -> None:
    node, tsc = shutil.which("node"), PACKAGE / "node_modules" / ".bin" / "tsc"
    if node is None or not tsc.exists() or not (PACKAGE / "dist" / "index.js").exists():
        reason = "node and the TypeScript SDK's node_modules and dist/ are needed (source scripts/setup.sh)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    # Inside the package, so that "@cerebelum/worker" resolves to it as it does for a user's project.
    folder = PACKAGE / "build" / "docs-options"
    folder.mkdir(parents=True, exist_ok=True)
    source = 'import { Worker } from "@cerebelum/worker";\n\n' + options_block()
    source += 'console.log("built");\n'
    (folder / "options.ts").write_text(source)
    (folder / "tsconfig.json").write_text(
        '{"extends": "../../tsconfig.json", "compilerOptions": {"rootDir": ".", "outDir": "out", "declaration": false},'
        ' "include": ["options.ts"]}\n'
    )
    checked = subprocess.run(
        [str(tsc), "-p", str(folder / "tsconfig.json")], capture_output=True, text=True, timeout=90
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = subprocess.run([node, str(folder / "out" / "options.js")], capture_output=True, text=True, timeout=30)
    assert (ran.returncode, ran.stdout) == (0, "built\n"), ran.stderr
