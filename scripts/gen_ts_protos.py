"""Regenerate the TypeScript gRPC code from proto/ into the TypeScript worker SDK.

protoc is the one in ``grpc_tools`` (as for the Python code); the TypeScript comes from the
``ts-proto`` plugin pinned in worker-sdk/typescript/package-lock.json (``npm ci`` there first,
which scripts/setup.sh does). Run with ``--check`` in CI: it regenerates into a temporary
folder and fails when the committed code differs, so the .proto files stay the one source.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gen_protos import WELL_KNOWN_TYPES, sync_generated  # this script's folder is on sys.path
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE_ROOT = ROOT / "worker-sdk" / "typescript"
OUT_ROOT = PACKAGE_ROOT / "src" / "gen"
PLUGIN = PACKAGE_ROOT / "node_modules" / ".bin" / "protoc-gen-ts_proto"
PROTOS = Path("cerebelum") / "v1"

# ESM with explicit ".js" import suffixes (NodeNext), grpc-js clients and service definitions,
# 64-bit fields as numbers (durations and epoch milliseconds fit), oneofs as tagged unions.
TS_PROTO_OPTIONS = ",".join(
    [
        "outputServices=grpc-js",
        "esModuleInterop=true",
        "importSuffix=.js",
        "env=node",
        "forceLong=number",
        "oneof=unions-value",
        "outputJsonMethods=false",
        "useExactTypes=false",
    ]
)


def generate(out_root: Path) -> list[Path]:
    if not PLUGIN.exists():
        raise SystemExit(f"{PLUGIN} is missing: run `npm ci` in {PACKAGE_ROOT} (scripts/setup.sh does)")
    protos = sorted((PROTO_ROOT / PROTOS).glob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={WELL_KNOWN_TYPES}",
        f"--plugin=protoc-gen-ts_proto={PLUGIN}",
        f"--ts_proto_out={out_root}",
        f"--ts_proto_opt={TS_PROTO_OPTIONS}",
        *[str(p) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p.relative_to(out_root) for p in out_root.rglob("*.ts"))


def main() -> int:
    return sync_generated(
        generate,
        OUT_ROOT,
        lambda: {p.relative_to(OUT_ROOT) for p in OUT_ROOT.rglob("*.ts")} if OUT_ROOT.exists() else set(),
        check="--check" in sys.argv[1:],
        what="TypeScript protobuf code",
        script="scripts/gen_ts_protos.py",
    )


if __name__ == "__main__":
    raise SystemExit(main())
