#!/usr/bin/env python3
"""Regenerate requirements.lock, the hashed pins that scripts/setup.sh installs, from the pyprojects.

The lock holds every package the engine, the SDK and the dev and bench extras need on Python 3.11 on
Linux, each with the hashes of its files, so every developer and CI install the same bytes
(`pip install --require-hashes`). uv (a dev dependency) resolves it; the two editable packages are
left out, setup.sh installs them with ``--no-deps``. An existing pin is kept unless the pyprojects
no longer allow it or an upgrade is asked for:

    python scripts/lock.py                           # after editing a dependency in a pyproject
    python scripts/lock.py --upgrade-package ruff    # move one package to its newest allowed version
    python scripts/lock.py --upgrade                 # move everything

``--check`` (run by scripts/test) works offline: the lock's first line is a digest of the
dependency tables it was resolved from, and every requirement must be met by a pin. It fails
naming what is out of date.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

__all__ = ["check", "inputs_digest", "lock", "main"]

ROOT = Path(__file__).resolve().parent.parent
LOCK = Path("requirements.lock")
SDK = Path("worker-sdk/python/pyproject.toml")
EXTRAS = ("dev", "bench")
LOCAL = ("cerebelum", "cerebelum-operator")
PYTHON = "3.11"
PLATFORM = "linux"
# What uv resolves: both packages (editable, left out of the lock), and the installer and build
# backend that setup.sh uses for the editable installs, so nothing installed is unpinned.
UV_INPUT = "-e ./worker-sdk/python\n-e .[{extras}]\npip\n{build}\n"
DIGEST_PREFIX = "# inputs-sha256: "
# The environment the lock is for, to evaluate a requirement's markers (e.g. `; python_version < "3.12"`).
MARKER_ENV = {
    "python_version": PYTHON,
    "python_full_version": f"{PYTHON}.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
}


def _requirements(root: Path) -> dict[str, list[str]]:
    """The dependency tables the lock is resolved from, by where they come from."""
    engine = tomllib.loads((root / "pyproject.toml").read_text())
    sdk = tomllib.loads((root / SDK).read_text())
    optional = engine["project"].get("optional-dependencies", {})
    return {
        "build-system.requires": list(engine["build-system"]["requires"]),
        "project.dependencies": list(engine["project"]["dependencies"]),
        **{f"project.optional-dependencies.{extra}": list(optional.get(extra, [])) for extra in EXTRAS},
        f"{SDK}: project.dependencies": list(sdk["project"]["dependencies"]),
    }


def _uv_input(root: Path) -> str:
    build = "\n".join(_requirements(root)["build-system.requires"])
    return UV_INPUT.format(extras=",".join(EXTRAS), build=build)


def inputs_digest(root: Path) -> str:
    """A digest of everything that decides the lock's contents except the index's state."""
    payload = {"requirements": _requirements(root), "uv_input": _uv_input(root), "python": PYTHON, "platform": PLATFORM}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _pins(text: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for match in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", text, flags=re.MULTILINE):
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def check(root: Path) -> list[str]:
    """What is out of date between the pyprojects and the lock (empty when in sync)."""
    path = root / LOCK
    if not path.is_file():
        return [f"{LOCK} is missing"]
    text = path.read_text()
    problems: list[str] = []
    first = text.splitlines()[0] if text else ""
    if first != DIGEST_PREFIX + inputs_digest(root):
        problems.append(f"{LOCK} was not resolved from the current pyprojects' dependencies")
    pins = _pins(text)
    for source, requirements in _requirements(root).items():
        for line in requirements:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            if name in LOCAL or (requirement.marker is not None and not requirement.marker.evaluate(MARKER_ENV)):
                continue
            pinned = pins.get(name)
            if pinned is None:
                problems.append(f"{line!r} ({source}) has no pin in {LOCK}")
            elif not requirement.specifier.contains(pinned, prereleases=True):
                problems.append(f"{line!r} ({source}) is not met by the pin {name}=={pinned}")
    return problems


def lock(root: Path, *, uv_args: list[str]) -> None:
    """Resolve with uv into the lock (keeping its pins where allowed), then stamp the digest."""
    path = root / LOCK
    command = [
        sys.executable, "-m", "uv", "pip", "compile", "-",
        "--quiet", "--generate-hashes",
        "--python-version", PYTHON, "--python-platform", PLATFORM,
        *(arg for name in LOCAL for arg in ("--no-emit-package", name)),
        "--custom-compile-command", "python scripts/lock.py",
        "--output-file", str(LOCK),
        *uv_args,
    ]  # fmt: skip
    subprocess.run(command, input=_uv_input(root), text=True, cwd=root, check=True)
    text = path.read_text()
    path.write_text(f"{DIGEST_PREFIX}{inputs_digest(root)}\n{text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if the lock is out of date (offline)")
    parser.add_argument("--upgrade", action="store_true", help="move every package to its newest allowed version")
    parser.add_argument("--upgrade-package", action="append", default=[], metavar="NAME", help="move one package")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.root)
        for problem in problems:
            print(f"{LOCK}: {problem}", file=sys.stderr)
        if problems:
            print(f"{LOCK}: out of date; run `python scripts/lock.py` and commit the result", file=sys.stderr)
            return 1
        return 0
    uv_args = ["--upgrade"] if args.upgrade else []
    for name in args.upgrade_package:
        uv_args += ["--upgrade-package", name]
    lock(args.root, uv_args=uv_args)
    print(f"{LOCK}: {len(_pins((args.root / LOCK).read_text()))} packages pinned")
    return 0


if __name__ == "__main__":
    sys.exit(main())
