"""The SDK READMEs' samples, run as written against a real `cerebelum dev`.

Each README's complete worker comes with the Workflow document `cerebelum apply` takes; the
Python README's client sample applies, starts and waits for that workflow while the README's
worker serves it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ROOT, EngineProcess, run_cli, sqlite_engine

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

READMES = {
    "python": ROOT / "worker-sdk" / "python" / "README.md",
    "typescript": ROOT / "worker-sdk" / "typescript" / "README.md",
}


def block(readme: Path, after: str, language: str) -> str:
    section = readme.read_text().split(after, 1)[1]
    match = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"{readme}: no {language} block after {after!r}"
    return match.group(1)


# The blocks this module runs as written (tests/docs checks that each doc marks them so).
DOC_BLOCKS = [
    block(READMES["python"], "## A complete worker", "python"),
    block(READMES["python"], "## A complete worker", "yaml"),
    block(READMES["typescript"], "## A complete worker", "yaml"),
    block(READMES["python"], "## Clients", "python"),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with sqlite_engine(tmp_path_factory.mktemp("sdk-readmes")) as process:
        yield process


def cli(engine: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(engine, *args)


@pytest.mark.parametrize("sdk", sorted(READMES))
def test_the_readme_workflow_of_the_complete_worker_is_accepted_by_cerebelum_apply(
    engine: EngineProcess, sdk: str, tmp_path: Path
) -> None:
    document = tmp_path / "orders.yaml"
    document.write_text(block(READMES[sdk], "## A complete worker", "yaml"))
    applied = cli(engine, "apply", "-f", str(document))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "orders" in cli(engine, "get", "workflows").stdout


def test_the_python_readme_client_sample_runs_the_readme_worker_to_succeeded(
    engine: EngineProcess, tmp_path: Path
) -> None:
    readme = READMES["python"]
    (tmp_path / "worker.py").write_text(block(readme, "## A complete worker", "python"))
    (tmp_path / "client.py").write_text(block(readme, "## Clients", "python"))
    env = {**os.environ, "CEREBELUM_ADDRESS": engine.address}
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([sys.executable, str(tmp_path / "worker.py")], env=env, stdout=out, stderr=out)
    try:
        ran = subprocess.run(
            [sys.executable, str(tmp_path / "client.py")], env=env, capture_output=True, text=True, timeout=120
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr + log.read_text()
        lines = ran.stdout.splitlines()
        assert lines[0].startswith("Succeeded ")  # print(done.phase, done.output)
        assert lines[-1].startswith("NotFound ")  # the sample's NotFoundError
    finally:
        worker.terminate()
        worker.wait(timeout=30)
