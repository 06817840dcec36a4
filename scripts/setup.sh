#!/usr/bin/env bash
# Creates .venv and installs the SDK, the engine and the dev tools into it.
# Sourced by scripts/demo and scripts/test; safe to run again (fast when nothing changed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CEREBELUM_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.cerebelum-installed"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/worker-sdk/python/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing cerebelum (SDK, engine, dev and benchmark tools)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT/worker-sdk/python" -e "$ROOT[dev,bench]"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"

# The TypeScript worker SDK: its pinned dependencies (npm ci, again when the lock changes) and dist/.
TS_SDK="$ROOT/worker-sdk/typescript"
if command -v npm >/dev/null 2>&1; then
  ts_stamp="$TS_SDK/node_modules/.cerebelum-installed"
  ts_want="$(cat "$TS_SDK/package.json" "$TS_SDK/package-lock.json" | sha256sum | cut -c1-16)"
  if [ ! -f "$ts_stamp" ] || [ "$(cat "$ts_stamp")" != "$ts_want" ]; then
    echo "setup: installing the TypeScript SDK's dependencies (npm ci)"
    (cd "$TS_SDK" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    echo "$ts_want" > "$ts_stamp"
  fi
  if [ ! -f "$TS_SDK/dist/index.js" ] || [ -n "$(find "$TS_SDK/src" "$TS_SDK"/tsconfig*.json -newer "$TS_SDK/dist/index.js" -print -quit)" ]; then
    echo "setup: building the TypeScript SDK (dist/)"
    (cd "$TS_SDK" && npm run --silent build)
  fi
else
  echo "setup: npm not found: the TypeScript SDK is not set up (its tests skip, and fail in CI)"
fi
