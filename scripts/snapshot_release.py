#!/usr/bin/env python3
"""Write the earlier release the upgrade test installs: its engine, SDK, CRDs and chart, from git.

    python scripts/snapshot_release.py            # write tests/upgrade/previous-release.tar.xz
    python scripts/snapshot_release.py --check    # the file is what git has for the pinned revision

The test installs that revision and upgrades from it (tests/upgrade/). It reads the snapshot,
not the git history, because a checkout made for CI may hold only its own commit; the snapshot's
one source is `git archive` of `REVISION`, and `--check` proves it (where the history is there).
"""

from __future__ import annotations

import argparse
import io
import lzma
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "upgrade" / "previous-release.tar.xz"
# The last landed release before issue 19's pause, reset and flow control (store schema 5, events format 2).
REVISION = "aa9d88f42f26b4b07ea4c0ec9a51a7236bd3bd02"
PATHS = ("operator/cerebelum_operator", "worker-sdk/python/src/cerebelum", "crds", "charts/cerebelum")


def archive(revision: str) -> bytes:
    """The revision's files as a tar with fixed times and owners, so one revision gives one file."""
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, *PATHS], capture_output=True, check=True
    ).stdout
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(listing)) as source, tarfile.open(fileobj=out, mode="w") as target:
        for member in sorted(source.getmembers(), key=lambda m: m.name):
            member.mtime, member.uid, member.gid, member.uname, member.gname = 0, 0, 0, "", ""
            data = source.extractfile(member) if member.isfile() else None
            target.addfile(member, data)
        revision_file = tarfile.TarInfo("REVISION")
        text = f"{revision}\n".encode()
        revision_file.size = len(text)
        target.addfile(revision_file, io.BytesIO(text))
    return lzma.compress(out.getvalue(), preset=9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args()
    known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{REVISION}^{{commit}}"], capture_output=True)
    if known.returncode != 0:
        if args.check and SNAPSHOT.is_file():
            where = SNAPSHOT.relative_to(ROOT)
            print(f"{where}: revision {REVISION[:12]} is not in this checkout's history; not compared")
            return 0
        print(f"revision {REVISION} is not in this checkout's history", file=sys.stderr)
        return 1
    wanted = archive(REVISION)
    if args.check:
        if not SNAPSHOT.is_file() or lzma.decompress(SNAPSHOT.read_bytes()) != lzma.decompress(wanted):
            print(f"{SNAPSHOT.relative_to(ROOT)} is stale: run scripts/snapshot_release.py", file=sys.stderr)
            return 1
        print(f"{SNAPSHOT.relative_to(ROOT)} is revision {REVISION[:12]}")
        return 0
    SNAPSHOT.write_bytes(wanted)
    print(f"wrote {SNAPSHOT.relative_to(ROOT)} ({len(wanted):,} bytes) from {REVISION[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
