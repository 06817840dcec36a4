#!/usr/bin/env bash
# Makes sure Debian's Chromium is at /usr/bin/chromium for the browser tests (tests/browser) and the
# UI benchmark (bench/ui.py), which drive it with Playwright. Playwright never downloads a browser
# here: it is launched with executable_path=/usr/bin/chromium.
#
#   scripts/ensure-chromium.sh    install what is missing (as root, through apt); exits at once when all are there
#
# Fonts: without any, Chromium renders text as nothing in screenshots. fonts-dejavu-core is what
# fontconfig falls back to; fonts-liberation gives Arial/Helvetica/Times metrics for `sans-serif`
# and `serif` in the pages' CSS. No recommends: no desktop notification daemon, printing or upower.
#
# Not root and missing: says how to install it; fails under CI=true (a missing dependency must
# fail there), else warns and succeeds (the browser tests then skip).
set -euo pipefail

PACKAGES=(chromium fonts-dejavu-core fonts-liberation)

log() { printf '[ensure-chromium] %s\n' "$*" >&2; }

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)) && [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  log "missing: ${missing[*]:-/usr/bin/chromium}; install with: sudo apt-get install --no-install-recommends ${PACKAGES[*]}"
  if [[ ${CI:-} == true ]]; then
    log "ERROR: CI needs Chromium for tests/browser"
    exit 1
  fi
  log "WARNING: the browser tests (tests/browser) will be skipped"
  exit 0
fi
log "installing ${missing[*]}"
started=$SECONDS
export DEBIAN_FRONTEND=noninteractive
# The lock timeout: another apt-get of scripts/test (hack/node/packages.sh) may be running.
apt_options=(-o DPkg::Lock::Timeout=600)
apt-get "${apt_options[@]}" update -qq >&2 || log "apt-get update failed; trying with the current lists"
apt-get "${apt_options[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[[ -x /usr/bin/chromium ]] || { log "ERROR: /usr/bin/chromium is still missing after the install"; exit 1; }
log "installed in $((SECONDS - started)) s: $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
