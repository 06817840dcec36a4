#!/usr/bin/env bash
# Install the Debian packages a test node needs: the container runtime (containerd + runc), the CNI
# plugins (bridge, host-local, loopback, portmap), and what kube-proxy and the kubelet call
# (iptables, conntrack; mount, nsenter and ip come with util-linux and iproute2).
#
#   hack/node/packages.sh      install what is missing (as root, through apt); exits at once when all are there
#
# Versions are Debian bookworm's: containerd 1.6, runc 1.1, containernetworking-plugins 1.1.
set -euo pipefail

PACKAGES=(containerd runc containernetworking-plugins iptables conntrack iproute2 util-linux mount ethtool socat)

log() { printf '[node-packages] %s\n' "$*" >&2; }

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
[[ $(id -u) == 0 ]] || { log "ERROR: installing ${missing[*]} needs root"; exit 1; }
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || log "apt-get update failed; trying with the current lists"
# --no-install-recommends: no criu, no docker-specific extras. The packages' own services
# (containerd.service) are not started here: without systemd as PID 1 nothing starts them,
# and the test harness runs its own containerd with its own config and state directories.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
log "installed: $(dpkg-query -W -f='${Package}=${Version} ' "${PACKAGES[@]}")"
