#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries exist (the tests start a throwaway server).
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null || command -v initdb > /dev/null; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get > /dev/null; then
  echo "setup: installing PostgreSQL from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql > /dev/null
else
  echo "setup: PostgreSQL server binaries not found; install the 'postgresql' package" >&2
  exit 1
fi
