"""requirements.lock: in sync with the pyprojects, and what `scripts/setup.sh` installs from."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILES = ("pyproject.toml", "worker-sdk/python/pyproject.toml", "requirements.lock", "scripts/setup.sh")


def _copy_of_the_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name)
    return root


def _lock_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts/lock.py"), "--check", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_committed_lock_is_in_sync_with_the_pyprojects() -> None:
    out = _lock_check(ROOT)
    assert out.returncode == 0, out.stderr


def test_the_lock_check_names_a_dev_tool_whose_bound_changed_without_relocking(tmp_path: Path) -> None:
    root = _copy_of_the_repo(tmp_path)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    assert '"ruff>=0.8,<0.18"' in text
    pyproject.write_text(text.replace('"ruff>=0.8,<0.18"', '"ruff>=0.99,<0.100"'))
    out = _lock_check(root)
    assert out.returncode == 1
    assert "'ruff>=0.99,<0.100' (project.optional-dependencies.dev) is not met by the pin ruff==" in out.stderr
    assert "run `python scripts/lock.py`" in out.stderr


def test_the_lock_check_notices_an_sdk_dependency_added_without_relocking(tmp_path: Path) -> None:
    root = _copy_of_the_repo(tmp_path)
    sdk = root / "worker-sdk/python/pyproject.toml"
    sdk.write_text(sdk.read_text().replace('"pydantic>=2.7,<3",', '"pydantic>=2.7,<3",\n  "attrs>=20",'))
    out = _lock_check(root)
    assert out.returncode == 1
    # attrs is pinned already (aiohttp needs it), so only the digest tells that the lock is stale.
    assert "was not resolved from the current pyprojects' dependencies" in out.stderr


def _setup_with_a_recording_python(root: Path, venv: Path) -> list[str]:
    """Source setup.sh with a venv whose python records its arguments; returns the calls."""
    log = venv / "calls.log"
    python = venv / "bin/python"
    if not python.exists():
        python.parent.mkdir(parents=True)
        python.write_text(f'#!/bin/bash\nprintf "%s\\n" "$*" >> {log}\n')
        python.chmod(0o755)
    # A PATH without npm, so setup.sh leaves the TypeScript SDK (not copied here) alone.
    tools = venv.parent / "tools"
    tools.mkdir(exist_ok=True)
    for tool in ("cat", "cut", "dirname", "sha256sum"):
        if not (tools / tool).exists():
            (tools / tool).symlink_to(shutil.which(tool) or tool)
    before = log.read_text().splitlines() if log.exists() else []
    out = subprocess.run(
        ["/bin/bash", "-c", "source scripts/setup.sh"],
        cwd=root,
        env={"CEREBELUM_VENV": str(venv), "PATH": str(tools), "HOME": os.environ.get("HOME", "/")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    after = log.read_text().splitlines() if log.exists() else []
    return after[len(before) :]


def test_setup_installs_third_party_packages_only_from_the_hashed_lock_and_the_projects_without_deps(
    tmp_path: Path,
) -> None:
    root = _copy_of_the_repo(tmp_path)
    venv = tmp_path / "venv"
    calls = _setup_with_a_recording_python(root, venv)
    assert calls == [
        f"-m pip install --quiet --require-hashes --no-deps -r {venv}/pip.lock",
        f"-m pip install --quiet --require-hashes -r {root}/requirements.lock",
        f"-m pip install --quiet --no-deps --no-build-isolation -e {root}/worker-sdk/python -e {root}",
    ]
    pip_lock = (venv / "pip.lock").read_text().splitlines()
    assert pip_lock[0].startswith("pip==") and len(pip_lock) >= 2, "the locked pip first, with its hashes"
    assert all(line.startswith("    --hash=sha256:") for line in pip_lock[1:]), pip_lock


def test_setup_installs_again_when_the_lock_changes_and_does_nothing_when_nothing_changed(tmp_path: Path) -> None:
    root = _copy_of_the_repo(tmp_path)
    venv = tmp_path / "venv"
    assert len(_setup_with_a_recording_python(root, venv)) == 3
    assert _setup_with_a_recording_python(root, venv) == []
    lock = root / "requirements.lock"
    lock.write_text(lock.read_text().replace("pip==", "pip==0", 1))
    assert len(_setup_with_a_recording_python(root, venv)) == 3
