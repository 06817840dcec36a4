"""A shell that runs a doc's commands one at a time, as a reader types them.

The shell runs in network, mount and PID namespaces of its own (root only): the docs' default
address, 127.0.0.1:7450, is free whatever else runs on the machine; `.cerebelum/` (where
`cerebelum dev` keeps its store) is a fresh tmpfs, so the checkout is left as it was; and every
process a command leaves in the background ends with the shell.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from .blocks import ROOT

__all__ = ["Ran", "Shell", "checkout_copy", "commands", "needs_namespaces", "shell"]

VENV_BIN = str(ROOT / ".venv" / "bin")


def needs_namespaces() -> None:
    """Skip without root or unshare (an error on CI, where both must be there)."""
    reason = None
    if os.geteuid() != 0:
        reason = "the doc samples run in namespaces of their own, which needs root"
    elif shutil.which("unshare") is None or shutil.which("ip") is None:
        reason = "unshare and ip (util-linux, iproute2) are needed"
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def checkout_copy(where: Path) -> Path:
    """A folder that looks like the checkout to a doc's commands (links to it), for commands that
    write files where they run."""
    where.mkdir(parents=True, exist_ok=True)
    # Every top-level entry but git's and the stores' folders, so a file the setup comes to read
    # (requirements.lock was one) is there without this list knowing it.
    for name in sorted(entry.name for entry in ROOT.iterdir() if entry.name not in {".git", ".cerebelum"}):
        (where / name).symlink_to(ROOT / name)
    return where


def commands(block: str) -> list[str]:
    """The block's commands: its non-empty lines, with backslash continuations joined."""
    out: list[str] = []
    pending = ""
    for line in block.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line + "\n"
            continue
        line = pending + line
        pending = ""
        if line.strip():
            out.append(line)
    return out


@dataclass(frozen=True)
class Ran:
    command: str
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"$ {self.command}\n(exit {self.returncode})\n{self.stdout}{self.stderr}"


class Shell:
    """One bash; `run` sends it one command and waits for that command's exit status."""

    def __init__(
        self, workdir: Path, *, env: dict[str, str] | None = None, network: bool = False, cwd: Path = ROOT
    ) -> None:
        self.workdir = workdir
        self.count = 0
        self.transcript: list[Ran] = []
        base = dict(os.environ)
        # The reader's shell: no virtualenv on PATH until a doc's `source scripts/setup.sh` puts it there.
        base["PATH"] = os.pathsep.join(p for p in base.get("PATH", "").split(os.pathsep) if p != VENV_BIN)
        for name in ("VIRTUAL_ENV", "CEREBELUM_ADDRESS", "CEREBELUM_TOKEN", "CEREBELUM_TOKEN_FILE", "CEREBELUM_TLS_CA"):
            base.pop(name, None)
        base.update(env or {})
        (cwd / ".cerebelum").mkdir(exist_ok=True)
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = (workdir / "shell.log").open("wb")
        self.process = subprocess.Popen(
            ["unshare", *([] if network else ["--net"]), "--mount", "--pid", "--fork", "--kill-child",
             "--mount-proc", "bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd, env=base,
        )  # fmt: skip
        self.must(("" if network else "ip link set lo up && ") + "mount -t tmpfs tmpfs .cerebelum", timeout=30)

    def run(self, command: str, *, timeout: float = 120) -> Ran:
        """Run one command as written; a command ending in `&` returns once it is started."""
        self.count += 1
        out, err, rc = (self.workdir / f"{self.count}.{name}" for name in ("out", "err", "rc"))
        assert self.process.stdin is not None
        self.process.stdin.write(f"{{ {command}\n}} >{out} 2>{err}; echo $? >{rc}.tmp; mv {rc}.tmp {rc}\n".encode())
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        while not rc.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"the shell ended while running {command!r}\n{self.history()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{command!r} did not end within {timeout}s\n{self.history()}")
            time.sleep(0.05)
        ran = Ran(command, int(rc.read_text()), out.read_text(), err.read_text())
        self.transcript.append(ran)
        return ran

    def must(self, command: str, *, timeout: float = 120) -> Ran:
        ran = self.run(command, timeout=timeout)
        assert ran.returncode == 0, f"{ran}\n--- before it:\n{self.history()}"
        return ran

    def wait_for(self, what: str, command: str, check: Callable[[Ran], bool], *, timeout: float = 60) -> Ran:
        """Repeat a command of the harness (not the doc's) until `check` holds."""
        deadline = time.monotonic() + timeout
        while True:
            ran = self.run(command)
            if check(ran):
                return ran
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; last:\n{ran}\n{self.history()}")
            time.sleep(0.2)

    def history(self) -> str:
        lines = [str(ran) for ran in self.transcript[-12:]]
        return "\n".join(lines)[-8000:]

    def background_logs(self) -> str:
        """What the commands left in the background printed (their output files)."""
        parts = []
        for index, ran in enumerate(self.transcript, start=1):
            if ran.command.rstrip().split("#", 1)[0].rstrip().endswith("&"):
                for name in ("out", "err"):
                    parts.append(
                        f"--- {ran.command} ({name})\n" + (self.workdir / f"{index}.{name}").read_text()[-3000:]
                    )
        return "\n".join(parts)

    def close(self) -> None:
        self.process.kill()  # --kill-child: the namespace's processes end with it
        self.process.wait(timeout=30)
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.log.close()


@contextmanager
def shell(
    workdir: Path, *, env: dict[str, str] | None = None, network: bool = False, cwd: Path = ROOT
) -> Iterator[Shell]:
    """A Shell in `cwd`; with `network`, on the machine's network (to reach the package registry)."""
    needs_namespaces()
    before = checkout_status()
    sh = Shell(workdir, env=env, network=network, cwd=cwd)
    try:
        yield sh
    finally:
        sh.close()
    # A doc's commands leave the reader's checkout as it was (stores go to .cerebelum/, ignored).
    after = checkout_status()
    assert after == before, f"the commands changed the checkout:\n{after}"


def checkout_status() -> str:
    """`git status` of the checkout, untracked files included."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return status.stdout
