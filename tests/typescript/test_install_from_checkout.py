"""The SDK README's install commands, run as written on a fresh checkout (no node_modules, no dist/)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import PACKAGE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def install_block() -> str:
    section = (PACKAGE / "README.md").read_text().split("## Install", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README's Install section has no sh block"
    return match.group(1)


def install_commands() -> list[str]:
    return [line.split("#", 1)[0].strip() for line in install_block().splitlines() if line.strip()]


DOC_BLOCKS = [install_block()]  # run as written below (tests/docs checks the README marks it so)


def test_the_readme_install_commands_pack_the_sdk_from_a_fresh_checkout_and_a_project_imports_it_and_its_testing_kit(
    tmp_path: Path,
) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(
        PACKAGE,
        checkout / "worker-sdk" / "typescript",
        ignore=shutil.ignore_patterns("node_modules", "dist", "build", "*.tgz"),
    )
    pack, install = install_commands()
    packed = subprocess.run(["bash", "-c", pack], cwd=checkout, capture_output=True, text=True, timeout=240)
    assert packed.returncode == 0, packed.stdout[-3000:] + packed.stderr[-3000:]

    project = tmp_path / "my-worker"
    project.mkdir()
    (project / "package.json").write_text(json.dumps({"name": "my-worker", "private": True, "type": "module"}))
    tarball = install.split()[-1]  # "./worker-sdk/typescript/cerebelum-worker-<version>.tgz"
    command = install.replace(tarball, str((checkout / tarball).resolve()))
    installed = subprocess.run(["bash", "-c", command], cwd=project, capture_output=True, text=True, timeout=240)
    assert installed.returncode == 0, installed.stderr[-3000:]
    imported = subprocess.run(
        [
            "node",
            "--input-type=module",
            "-e",
            "const m = await import('@cerebelum/worker'); const t = await import('@cerebelum/worker/testing');"
            " console.log(typeof m.Worker, typeof t.StepEnvironment);",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.stdout.strip() == "function function", "the testing kit ships too: " + imported.stderr
