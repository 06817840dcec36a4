#!/usr/bin/env bash
# Creates .venv and installs the SDK, the engine and the dev tools into it, then puts .venv/bin
# first on PATH. Sourced by scripts/demo and scripts/test, and by users (`source scripts/setup.sh`);
# safe to run again (fast when nothing changed).
#
# The work runs in a subshell with strict options: a shell that sources this keeps its own options
# (no `set -e` left behind to close an interactive terminal on the next failing command) and
# survives a failed setup; only PATH changes in the caller.
_cerebelum_venv="${CEREBELUM_VENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv}"
# (Not `if ( ... )`: bash ignores `set -e` inside a condition.)
(
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$_cerebelum_venv"
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
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT/worker-sdk/python" -e "${ROOT}[dev,bench]"
  echo "$want" > "$stamp"
fi
# shellcheck disable=SC2030  # for npm run build below; the caller's PATH is set after the subshell
PATH="$VENV/bin:$PATH"

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
)
_cerebelum_status=$?
if [ "$_cerebelum_status" = 0 ]; then
  unset _cerebelum_status
  # shellcheck disable=SC2031
  export PATH="$_cerebelum_venv/bin:$PATH"
  unset _cerebelum_venv
else
  unset _cerebelum_venv _cerebelum_status
  echo "setup: failed (see above)" >&2
  # `return` when sourced, `exit` when run as a script.
  return 1 2>/dev/null || exit 1
fi
