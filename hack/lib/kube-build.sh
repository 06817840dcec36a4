# Shared by hack/control-plane/build.sh and hack/node/build.sh (sourced, not run).
# shellcheck shell=bash

# req_version GO_MOD MODULE_PATH: the version GO_MOD requires of MODULE_PATH (replace blocks skipped).
req_version() {
  awk -v m="$2" '
    /^replace[ (]/ { inrep = 1 } inrep && /^\)/ { inrep = 0; next } inrep { next }
    ($1 == m && $2 ~ /^v/) { print $2; exit }
    ($1 == "require" && $2 == m) { print $3; exit }' "$1"
}

# k8s_ldflags VERSION: -ldflags for a Kubernetes command, with the release's version stamp
# (`kubelet --version` prints it). Both scripts must use the very same flags: the packages the
# commands share then come from the Go build cache instead of compiling twice.
k8s_ldflags() {
  local version=$1 minor p flags="-s -w"
  minor=${version#v1.}; minor=${minor%%.*}
  for p in k8s.io/component-base k8s.io/client-go/pkg; do
    flags+=" -X $p/version.gitVersion=$version -X $p/version.gitMajor=1 -X $p/version.gitMinor=$minor"
    flags+=" -X $p/version.gitTreeState=clean -X $p/version.buildDate=1970-01-01T00:00:00Z"
  done
  printf '%s' "$flags"
}
