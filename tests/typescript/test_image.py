"""The TypeScript worker image: its Dockerfile's structure, and the layout it installs the SDK in.

No Docker engine here, so the image is not built; what can be checked without one is: every file
it copies exists and is allowed into the build context, the base is pinned, the final stage runs
as a numeric non-root user with an exec-form CMD and writes nothing outside /tmp, and a worker
outside the SDK's directory finds it where the image puts it (/node_modules/@cerebelum/worker).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import ROOT

from .conftest import PACKAGE

pytestmark = pytest.mark.timeout(60)

DOCKERFILE = ROOT / "images" / "worker-typescript" / "Dockerfile"
IGNORE_FILE = ROOT / "images" / "worker-typescript" / "Dockerfile.dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def context_sources() -> list[str]:
    """What the COPY instructions take from the build context (not from other stages)."""
    sources: list[str] = []
    for name, args in instructions():
        if name == "COPY" and "--from=" not in args:
            sources.extend(args.split()[:-1])
    return sources


def allowed(path: str) -> bool:
    """Whether the allowlist in Dockerfile.dockerignore lets `path` into the build context."""
    verdict = False
    for line in IGNORE_FILE.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        keep, pattern = pattern.startswith("!"), pattern.removeprefix("!").rstrip("/")
        if pattern == "*" or path.rstrip("/") == pattern or path.startswith(pattern + "/"):
            verdict = keep
    return verdict


def test_every_file_the_dockerfile_copies_exists_and_is_let_into_the_build_context() -> None:
    sources = context_sources()
    assert "worker-sdk/typescript/package-lock.json" in sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert allowed(source), f"{source} is left out by {IGNORE_FILE.name}"
    tsconfig = json.loads((PACKAGE / "tsconfig.build.json").read_text())
    assert tsconfig["include"] == ["src/**/*.ts"], "the image copies src/ only"
    assert not allowed("worker-sdk/typescript/node_modules")
    assert not allowed("worker-sdk/typescript/test")
    assert not allowed(".git")


def test_the_base_is_pinned_and_the_dependencies_come_from_the_lock() -> None:
    arg = next(args for name, args in instructions() if name == "ARG" and args.startswith("NODE_IMAGE="))
    assert re.fullmatch(r"NODE_IMAGE=node:20\.\d+\.\d+-bookworm-slim", arg), arg
    runs = " ".join(args for name, args in instructions() if name == "RUN")
    assert "npm ci --ignore-scripts" in runs
    assert "npm install" not in runs


def test_the_final_stage_runs_as_a_numeric_non_root_user_with_an_exec_form_cmd() -> None:
    final = stages()[-1]
    users = [args for name, args in final if name == "USER"]
    assert users == ["10001:10001"]
    [cmd] = [args for name, args in final if name == "CMD"]
    assert json.loads(cmd) == ["node", "/app/worker.js"]
    assert not [args for name, args in final if name in ("EXPOSE", "ENTRYPOINT", "VOLUME")]
    env = " ".join(args for name, args in final if name == "ENV")
    assert "NPM_CONFIG_CACHE=/tmp/" in env, "npm may only write to /tmp"
    copies = [args for name, args in final if name == "COPY"]
    assert copies == ["--from=build /out/ /node_modules/"]
    assert final.index(("USER", "10001:10001")) > max(i for i, (name, _) in enumerate(final) if name in ("COPY", "RUN"))


def test_a_worker_outside_the_sdk_finds_it_where_the_image_installs_it(node: str, tmp_path: Path) -> None:
    sdk = tmp_path / "node_modules" / "@cerebelum" / "worker"
    sdk.mkdir(parents=True)
    shutil.copy(PACKAGE / "package.json", sdk / "package.json")
    shutil.copytree(PACKAGE / "dist", sdk / "dist")
    (sdk / "node_modules").symlink_to(PACKAGE / "node_modules")
    app = tmp_path / "app"
    app.mkdir()
    (app / "worker.js").write_text(
        'import { Worker, retryAfter } from "@cerebelum/worker";\n'
        'const worker = new Worker({ taskQueue: "q", address: "127.0.0.1:1" });\n'
        'worker.step("a", () => retryAfter("1s"));\n'
        "console.log(JSON.stringify(worker.stepNames));\n"
    )
    (app / "package.json").write_text('{"type": "module"}\n')
    result = subprocess.run([node, "worker.js"], cwd=app, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '["a"]'
