#!/usr/bin/env bash
# Build the helm CLI from source through the Go module proxy (`go install`).
#
#   hack/control-plane/build-helm.sh            build (or reuse) helm; its bin dir
#                                                is the last stdout line
#   HELM_VERSION=v3.x.y hack/control-plane/build-helm.sh
#
# Binary: ${CEREBELUM_CACHE:-$HOME/.cache/cerebelum}/helm/<version>/bin/helm.
# Exits at once when it is already there.
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
CACHE_ROOT=${CEREBELUM_CACHE:-$HOME/.cache/cerebelum}
DEST="$CACHE_ROOT/helm/$HELM_VERSION"
BIN="$DEST/bin"

log() { printf '[helm] %s\n' "$*" >&2; }

if [[ -x $BIN/helm ]]; then echo "$BIN"; exit 0; fi

command -v go >/dev/null || { log "ERROR: go is not installed"; exit 1; }
mkdir -p "$DEST"
exec 9>"$DEST/.lock"
flock 9
if [[ -x $BIN/helm ]]; then echo "$BIN"; exit 0; fi

TMP=$(mktemp -d "$DEST/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

start=$SECONDS
log "building helm $HELM_VERSION (go $(go env GOVERSION))"
GOBIN="$TMP" nice -n "${CEREBELUM_BUILD_NICE:-10}" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
mkdir -p "$BIN"
mv -f "$TMP/helm" "$BIN/helm"
log "built helm in $((SECONDS - start))s: $(du -sh "$BIN/helm" | cut -f1)"
echo "$BIN"
