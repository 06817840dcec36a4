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
