#!/usr/bin/env bash
# Build grpcurl, a third-party gRPC client, from source through the Go module proxy (`go install`):
# the integration tests check health, reflection and the token rule with a client that is not ours.
#
#   hack/tools/build-grpcurl.sh            build (or reuse) grpcurl; its bin dir
#                                          is the last stdout line
#   GRPCURL_VERSION=v1.x.y hack/tools/build-grpcurl.sh
#
# Binary: ${CEREBELUM_CACHE:-$HOME/.cache/cerebelum}/grpcurl-<version>/bin/grpcurl.
# Exits at once when it is already there.
set -euo pipefail

GRPCURL_VERSION=${GRPCURL_VERSION:-v1.9.4}
CACHE_ROOT=${CEREBELUM_CACHE:-$HOME/.cache/cerebelum}
DEST="$CACHE_ROOT/grpcurl-$GRPCURL_VERSION"
BIN="$DEST/bin"

log() { printf '[grpcurl] %s\n' "$*" >&2; }

if [[ -x $BIN/grpcurl ]]; then echo "$BIN"; exit 0; fi

command -v go >/dev/null || { log "ERROR: go is not installed"; exit 1; }
mkdir -p "$DEST"
exec 9>"$DEST/.lock"
flock 9
if [[ -x $BIN/grpcurl ]]; then echo "$BIN"; exit 0; fi

TMP=$(mktemp -d "$DEST/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

start=$SECONDS
log "building grpcurl $GRPCURL_VERSION (go $(go env GOVERSION))"
GOBIN="$TMP" nice -n "${CEREBELUM_BUILD_NICE:-10}" go install -trimpath \
  -ldflags "-s -w -X main.version=$GRPCURL_VERSION" \
  "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
mkdir -p "$BIN"
mv -f "$TMP/grpcurl" "$BIN/grpcurl"
log "built grpcurl in $((SECONDS - start))s: $(du -sh "$BIN/grpcurl" | cut -f1)"
echo "$BIN"
