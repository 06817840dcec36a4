#!/usr/bin/env bash
# Build the binaries of a Kubernetes node from source, through the Go module
# proxy, for the one-node test cluster (tests/node/) on machines without Docker.
#
#   hack/node/build.sh                 build (or reuse) the binaries;
#                                       the bin dir is the last stdout line
#   hack/node/build.sh --print-dir     print the bin dir, build nothing
#
# Binaries land in ${CEREBELUM_CACHE:-$HOME/.cache/cerebelum}/node/<k8s-version>/bin/:
#   kubelet kube-controller-manager kube-scheduler kube-proxy
#       k8s.io/kubernetes at the release that ../control-plane/kube-apiserver/go.mod
#       pins (the same module names them in `tool` directives; re-pin both with
#       hack/control-plane/build.sh --pin VERSION); static, CGO_ENABLED=0
#   coredns
#       ./coredns: CoreDNS at the version its go.mod requires, with only the
#       plugins a cluster DNS needs (see ./coredns/main.go)
#   pause
#       the sandbox ("pause") process: upstream's build/pause/linux/pause.c from
#       the k8s.io/kubernetes module, compiled statically with gcc
# When they are already there (and were built from the pinned versions) this
# script exits at once, without running go. Each of the three parts has its own
# stamp, so a change of one version rebuilds only that part.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
K8S_MOD="$HERE/../control-plane/kube-apiserver"
COREDNS_MOD="$HERE/coredns"
K8S_CMDS=(kubelet kube-controller-manager kube-scheduler kube-proxy)

log() { printf '[node] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# shellcheck source=../lib/kube-build.sh
source "$HERE/../lib/kube-build.sh"  # req_version, k8s_ldflags

case "${1:-}" in
  --print-dir | "") ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1" ;;
esac

K8S_VERSION=$(req_version "$K8S_MOD/go.mod" k8s.io/kubernetes)
COREDNS_VERSION=$(req_version "$COREDNS_MOD/go.mod" github.com/coredns/coredns)
[[ -n $K8S_VERSION && -n $COREDNS_VERSION ]] || die "cannot read pinned versions from go.mod files"
for c in "${K8S_CMDS[@]}"; do
  grep -q "k8s.io/kubernetes/cmd/$c\$" "$K8S_MOD/go.mod" ||
    die "$K8S_MOD/go.mod has no tool directive for $c: re-pin with hack/control-plane/build.sh --pin $K8S_VERSION"
done

CACHE_ROOT=${CEREBELUM_CACHE:-$HOME/.cache/cerebelum}
DEST="$CACHE_ROOT/node/$K8S_VERSION"
BIN="$DEST/bin"
# The pause binary carries no version of its own: it is stamped with the
# Kubernetes release its source came from.
declare -A STAMPS=(
  [kubernetes]="kubernetes=$K8S_VERSION"
  # The recipe (which plugins) is part of what was built, not only the version.
  [coredns]="coredns=$COREDNS_VERSION+$(cat "$COREDNS_MOD/main.go" "$COREDNS_MOD/go.mod" | sha256sum | cut -c1-12)"
  [pause]="pause=$K8S_VERSION"
)
declare -A BINARIES=(
  [kubernetes]="${K8S_CMDS[*]}"
  [coredns]=coredns
  [pause]=pause
)
STAMP="${STAMPS[kubernetes]} ${STAMPS[coredns]} ${STAMPS[pause]}"

part_done() { # part_done PART: its binaries are there, built from the pinned version
  local b
  for b in ${BINARIES[$1]}; do [[ -x $BIN/$b ]] || return 1; done
  [[ -f $BIN/.stamp-$1 && "$(cat "$BIN/.stamp-$1")" == "${STAMPS[$1]}" ]]
}
up_to_date() {
  [[ -f $BIN/.stamp && "$(cat "$BIN/.stamp")" == "$STAMP" ]] &&
    part_done kubernetes && part_done coredns && part_done pause
}

if [[ ${1:-} == --print-dir ]] || up_to_date; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || die "go is not installed (needed to build the node binaries)"
mkdir -p "$BIN"
# One build at a time per version (parallel test workers may all ask).
exec 9>"$DEST/.lock"
flock 9
if up_to_date; then echo "$BIN"; exit 0; fi

TMP=$(mktemp -d "$DEST/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

install_part() { # install_part PART: move its binaries from $TMP into $BIN, then stamp
  local b
  rm -f "$BIN/.stamp" "$BIN/.stamp-$1"
  for b in ${BINARIES[$1]}; do mv -f "$TMP/$b" "$BIN/$b"; done
  echo "${STAMPS[$1]}" >"$BIN/.stamp-$1"
}

# Static binaries, no VCS stamping (the recipe dirs are not the source).
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -buildvcs=false -mod=readonly"
NICE=(nice -n "${CEREBELUM_BUILD_NICE:-10}")
total_start=$SECONDS

if ! part_done kubernetes; then
  # The same flags as kube-apiserver in hack/control-plane/build.sh (no build
  # tags, -trimpath, CGO_ENABLED=0), so the packages they share come from the
  # Go build cache, and the same version stamp: `kubelet --version` prints it.
  K8S_LDFLAGS=$(k8s_ldflags "$K8S_VERSION")
  pkgs=()
  for c in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  log "building ${K8S_CMDS[*]} $K8S_VERSION (go $(go env GOVERSION), GOCACHE=$(go env GOCACHE))"
  t=$SECONDS
  # One go build for the four, so the packages they share compile once.
  (cd "$K8S_MOD" && "${NICE[@]}" go build -trimpath -ldflags "$K8S_LDFLAGS" -o "$TMP/" "${pkgs[@]}")
  install_part kubernetes
  log "built ${K8S_CMDS[*]} in $((SECONDS - t))s"
fi

if ! part_done coredns; then
  log "building coredns $COREDNS_VERSION"
  t=$SECONDS
  (cd "$COREDNS_MOD" && "${NICE[@]}" go build -trimpath \
    -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" -o "$TMP/coredns" .)
  install_part coredns
  log "built coredns in $((SECONDS - t))s"
fi

if ! part_done pause; then
  k8s_dir=$(cd "$K8S_MOD" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
            sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  src="$k8s_dir/build/pause/linux/pause.c"
  [[ -f $src ]] || die "no build/pause/linux/pause.c in k8s.io/kubernetes@$K8S_VERSION"
  # Upstream's build/pause/Makefile: TAG ?= 3.x.y, VERSION=v$(TAG)-$(REV).
  pause_tag=$(awk '$1 == "TAG" && $2 == "?=" { print $3; exit }' "$k8s_dir/build/pause/Makefile")
  [[ -n $pause_tag ]] || die "cannot read the pause TAG from build/pause/Makefile"
  # A static binary needs gcc and libc.a (libc6-dev).
  if ! command -v gcc >/dev/null || [[ ! -f /usr/lib/$(uname -m)-linux-gnu/libc.a && ! -f /usr/lib/libc.a ]]; then
    log "installing gcc and libc6-dev (apt) to compile pause.c"
    [[ $(id -u) == 0 ]] || die "gcc or libc6-dev is missing and this is not root: apt-get install gcc libc6-dev"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends gcc libc6-dev >&2 ||
      { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends gcc libc6-dev >&2; }
  fi
  log "building pause $pause_tag (from k8s.io/kubernetes $K8S_VERSION)"
  gcc -Os -Wall -Werror -static "-DVERSION=v$pause_tag-$K8S_VERSION" -o "$TMP/pause" "$src"
  strip "$TMP/pause"
  install_part pause
fi

echo "$STAMP" >"$BIN/.stamp"
log "node binaries ready in $((SECONDS - total_start))s: $(cd "$BIN" && du -sh "${K8S_CMDS[@]}" coredns pause | awk '{printf "%s=%s ", $2, $1}')"
echo "$BIN"
