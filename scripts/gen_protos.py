"""Regenerate the Python gRPC code from proto/ into the worker SDK.

Run with ``--check`` in CI: it regenerates into a temporary folder and fails
when the committed code differs, so the .proto files stay the one source.
"""

from __future__ import annotations

import filecmp
import shutil
import sys
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
# google/protobuf/*.proto (Timestamp), shipped with grpc_tools' protoc.
WELL_KNOWN_TYPES = Path(str(resources.files("grpc_tools") / "_proto"))
PROTO_ROOT = ROOT / "proto"
OUT_ROOT = ROOT / "worker-sdk" / "python" / "src"
PACKAGE = Path("cerebelum") / "v1"


def generate(out_root: Path) -> list[Path]:
    protos = sorted((PROTO_ROOT / PACKAGE).glob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={WELL_KNOWN_TYPES}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *[str(p) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    generated = sorted((out_root / PACKAGE).glob("*_pb2*.py*"))
    return [p.relative_to(out_root) for p in generated]


def sync_generated(
    generate: Callable[[Path], list[Path]],
    out_root: Path,
    committed: Callable[[], set[Path]],
    *,
    check: bool,
    what: str,
    script: str,
) -> int:
    """Generate into a temporary folder, then compare with (``check``) or replace the committed files."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_root = Path(tmp)
        generated = generate(tmp_root)
        stale = [
            rel
            for rel in generated
            if not (out_root / rel).exists() or not filecmp.cmp(tmp_root / rel, out_root / rel, shallow=False)
        ]
        extra = sorted(committed() - set(generated))
        if check:
            if stale or extra:
                names = ", ".join(str(p) for p in [*stale, *extra])
                print(f"generated {what} is stale: {names}; run {script}")
                return 1
            print(f"{what} is up to date ({len(generated)} files)")
            return 0
        for rel in generated:
            (out_root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_root / rel, out_root / rel)
        for rel in extra:
            (out_root / rel).unlink()
        print(f"wrote {len(generated)} files under {out_root}")
    return 0


def main() -> int:
    return sync_generated(
        generate,
        OUT_ROOT,
        lambda: {p.relative_to(OUT_ROOT) for p in (OUT_ROOT / PACKAGE).glob("*_pb2*.py*")},
        check="--check" in sys.argv[1:],
        what="protobuf code",
        script="scripts/gen_protos.py",
    )


if __name__ == "__main__":
    raise SystemExit(main())
