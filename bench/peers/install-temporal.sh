#!/usr/bin/env bash
# Build the `temporal` CLI (it embeds the Temporal dev server, `temporal server start-dev`) from
# the Go module proxy into a per-version cache directory, once; print the binary's path last.
#
# Why build instead of downloading a release: this project's machines reach only package
# registries, and the Go module proxy serves the CLI's source as a Go module.
#
# Why 1.5.1: it is the newest version whose module builds with `go install pkg@version`. 1.9.0 and
# 1.9.1 carry a `replace` directive in go.mod (github.com/temporalio/cli/cliext => ./cliext), which
# `go install pkg@version` refuses; 1.6.x to 1.8.x are not served by the proxy here.
#
# The Go module cache (GOPATH/GOMODCACHE) keeps its defaults so it is shared with other builds;
# only GOBIN is private to this version. A fully cold build (empty module and build caches) took
# 214 s on 2 cores; with both caches warm it took 11 s.
set -euo pipefail

TEMPORAL_CLI_VERSION="1.5.1"
MODULE_PACKAGE="github.com/temporalio/cli/cmd/temporal"
VERSION_SYMBOL="github.com/temporalio/cli/temporalcli.Version"

cache_root="${CEREBELUM_CACHE:-$HOME/.cache/cerebelum}"
target_dir="$cache_root/temporal-$TEMPORAL_CLI_VERSION"
binary="$target_dir/temporal"

if [[ -x "$binary" ]]; then
  echo "$binary"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install-temporal.sh: 'go' is not on PATH; a Go toolchain is needed to build the temporal CLI" >&2
  exit 1
fi

mkdir -p "$cache_root"
# Build into a private directory and move the binary in place at the end, so an interrupted or
# concurrent build never leaves a half-written binary at the path the runners look for.
staging="$(mktemp -d "$cache_root/.temporal-$TEMPORAL_CLI_VERSION.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

echo "install-temporal.sh: building temporal CLI $TEMPORAL_CLI_VERSION with $(go version) (a cold build takes minutes)" >&2
started=$SECONDS
# The version symbol is what the release builds set; without it `temporal --version` says 0.0.0-DEV.
GOBIN="$staging" go install -ldflags "-X $VERSION_SYMBOL=$TEMPORAL_CLI_VERSION" \
  "$MODULE_PACKAGE@v$TEMPORAL_CLI_VERSION" >&2
echo "install-temporal.sh: built in $((SECONDS - started)) s" >&2

mkdir -p "$target_dir"
mv -f "$staging/temporal" "$binary"
echo "$binary"
