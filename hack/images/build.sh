#!/usr/bin/env bash
# Build the project's images from its own Dockerfiles with podman, on base images made from
# Debian's packages (mmdebstrap), for machines where no container registry is reachable.
#
#   hack/images/build.sh              build (or reuse) every image; the last stdout line is a
#                                     directory with one docker-archive per image and images.txt
#                                     (lines "name:tag /path/to/archive.tar")
#   hack/images/build.sh --print-dir  print that directory (for the current sources), build nothing
#   hack/images/build.sh --env        print the exports that point podman at this script's store:
#                                     eval "$(hack/images/build.sh --env)"; podman images
#
# Images (all tagged :dev, built with `podman build --network host`):
#   localhost/cerebelum-operator          images/operator/Dockerfile           on the python base
#   localhost/cerebelum-worker-python     images/worker-python/Dockerfile      on the python base
#   localhost/cerebelum-worker-typescript images/worker-typescript/Dockerfile  on the node base
#   localhost/cerebelum-example-worker    examples/provision/Dockerfile        on the python base
#   localhost/cerebelum-postgres          e2e/images/postgres/Dockerfile       on the debian base
# The bases (recipes in ./base/*.conf) are localhost/cerebelum-base/{python,node,debian}:*; they
# are passed as the Dockerfiles' PYTHON_IMAGE / NODE_IMAGE / BASE_IMAGE build arguments.
#
# Everything is cached under ${CEREBELUM_CACHE:-$HOME/.cache/cerebelum}/images: podman's store
# (layers survive between runs), one archive per image keyed on the hash of its Dockerfile, the
# files its build context holds (git ls-files: tracked and untracked-not-ignored) and its base
# recipe, and the result directory keyed on all of them. A run with nothing changed prints the
# directory without starting podman. Each newly built image is checked as the charts run it
# (read-only root, uid 10001, only /tmp writable) before it is archived.
#
# Installs what it needs with apt-get when missing: podman, runc, mmdebstrap. Podman runs with
# runc and the cgroupfs manager (crun refuses this machine's hybrid cgroup layout) and explicit
# nofile/nproc ulimits, from a containers.conf and storage.conf written under the cache; the
# machine's own container configuration is left alone.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

log() { printf '[images] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

CACHE_ROOT=${CEREBELUM_CACHE:-$HOME/.cache/cerebelum}
CACHE="$CACHE_ROOT/images"
PODMAN_DIR="$CACHE/podman"
RUNROOT=${CEREBELUM_PODMAN_RUNROOT:-/run/cerebelum-podman}
export CONTAINERS_CONF="$PODMAN_DIR/containers.conf"
export CONTAINERS_STORAGE_CONF="$PODMAN_DIR/storage.conf"
# Explicit ulimits: the defaults are refused here. A container may not get more than podman itself
# has: this shell's hard limits (no CAP_SYS_RESOURCE in some sandboxes to raise them), and at most
# 32768 processes (podman lowers its own nproc limit to that).
hard_limit() { # hard_limit -n|-u CAP
  local v; v=$(ulimit -H "$1")
  if [[ $v == unlimited ]] || ((v > $2)); then v=$2; fi
  echo "$v"
}
NOFILE=$(hard_limit -n 1048576)
NPROC=$(hard_limit -u 32768)
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
ULIMITS=(--ulimit "nofile=$NOFILE:$NOFILE" --ulimit "nproc=$NPROC:$NPROC")

# name | Dockerfile | context | ignore file | base | build argument | inputs besides the Dockerfile
IMAGES=(
  "operator|images/operator/Dockerfile|.|.dockerignore|python|PYTHON_IMAGE|.dockerignore pyproject.toml README.md operator worker-sdk/python"
  "worker-python|images/worker-python/Dockerfile|.|.dockerignore|python|PYTHON_IMAGE|.dockerignore worker-sdk/python"
  "worker-typescript|images/worker-typescript/Dockerfile|.|images/worker-typescript/Dockerfile.dockerignore|node|NODE_IMAGE|images/worker-typescript/Dockerfile.dockerignore worker-sdk/typescript/package.json worker-sdk/typescript/package-lock.json worker-sdk/typescript/.npmrc worker-sdk/typescript/tsconfig.json worker-sdk/typescript/tsconfig.build.json worker-sdk/typescript/src"
  "example-worker|examples/provision/Dockerfile|.|.dockerignore|python|PYTHON_IMAGE|.dockerignore worker-sdk/python examples/provision/worker.py"
  "postgres|e2e/images/postgres/Dockerfile|e2e/images/postgres||debian|BASE_IMAGE|e2e/images/postgres"
)
BASES=(python node debian)

image_tag() { echo "localhost/cerebelum-$1:dev"; }
base_conf() { echo "$HERE/base/$1.conf"; }
base_field() { # base_field BASE KEY: a variable of base/BASE.conf
  # shellcheck disable=SC1090
  (set +u; source "$(base_conf "$1")"; printf '%s' "${!2}")
}

sha() { sha256sum | cut -c1-32; }

files_hash() { # files_hash PATH...: names and contents of the files git sees under the paths
  (
    cd "$ROOT"
    git ls-files -z --cached --others --exclude-standard -- "$@" | sort -zu |
      while IFS= read -r -d '' f; do [[ -f $f ]] && printf '%s\0' "$f"; done |
      xargs -0 -r sha256sum
  ) | sha
}

# ---- tools and podman's configuration (under the cache) ----------------------------------------
ensure_tools() {
  local need=()
  command -v podman >/dev/null || need+=(podman)
  command -v runc >/dev/null || need+=(runc)
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
  ((${#need[@]})) || return 0
  log "installing ${need[*]} (apt-get)"
  ((EUID == 0)) || die "run as root (podman's rootful store, mmdebstrap, apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  # Not podman's CNI bridge config: a kubelet's containerd on this machine would take the first
  # file in /etc/cni/net.d as its pod network (this script runs podman with host or no network).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Options::=--path-exclude=/etc/cni/net.d/* podman runc mmdebstrap >&2
}

write_podman_conf() {
  mkdir -p "$PODMAN_DIR/storage" "$PODMAN_DIR/volumes" "$PODMAN_DIR/networks" "$PODMAN_DIR/archives"
  cat >"$CONTAINERS_CONF.tmp" <<EOF
# Written by hack/images/build.sh (CONTAINERS_CONF for its podman).
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$RUNROOT/events.log"
tmp_dir = "$RUNROOT/libpod"
volume_path = "$PODMAN_DIR/volumes"
[network]
network_config_dir = "$PODMAN_DIR/networks"
EOF
  cat >"$CONTAINERS_STORAGE_CONF.tmp" <<EOF
# Written by hack/images/build.sh (CONTAINERS_STORAGE_CONF for its podman).
[storage]
driver = "overlay"
graphroot = "$PODMAN_DIR/storage"
runroot = "$RUNROOT"
EOF
  mv -f "$CONTAINERS_CONF.tmp" "$CONTAINERS_CONF"
  mv -f "$CONTAINERS_STORAGE_CONF.tmp" "$CONTAINERS_STORAGE_CONF"
}

image_label() { # image_label IMAGE LABEL: the label's value, empty if the image or label is missing
  podman image inspect --format "{{ index .Labels \"$2\" }}" "$1" 2>/dev/null | sed 's/^<no value>$//' || true
}

# ---- bases, from Debian's packages -----------------------------------------------------------
sources_file() { # the host's apt sources: deb822 file, else the one-line sources.list
  local f
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [[ -s $f ]] && { echo "$f"; return; }
  done
  f=$(find /etc/apt/sources.list.d -name '*.sources' -o -name '*.list' 2>/dev/null | sort | head -1)
  [[ -n $f ]] || die "no apt sources file on this machine"
  echo "$f"
}

build_base() { # build_base NAME
  local name=$1 tag suite packages cmd description hash tmp host_suite t epoch sources
  tag=$(base_field "$name" TAG); suite=$(base_field "$name" SUITE)
  packages=$(base_field "$name" PACKAGES); cmd=$(base_field "$name" CMD)
  description=$(base_field "$name" DESCRIPTION)
  hash=$(base_hash "$name")
  if [[ $(image_label "$tag" cerebelum.recipe) == "$hash" ]]; then
    log "base $tag: up to date"
    return
  fi
  t=$SECONDS
  tmp=$(mktemp -d "$CACHE/.base.XXXXXX")
  # The mirror is the host's: its sources file, with the suite names swapped when the base is of
  # another release than the host (trixie for Node.js 20 on a bookworm host).
  sources=$(sources_file)
  # shellcheck disable=SC1091
  host_suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [[ -n $host_suite ]] || die "cannot read the host's release from /etc/os-release"
  if [[ $sources == *.sources ]]; then
    sed -E "/^[[:space:]]*Suites:/ s/\\b$host_suite\\b/$suite/g" "$sources" >"$tmp/apt.sources"
  else
    sed -E "/^[[:space:]]*deb/ s/([[:space:]])$host_suite(-[a-z]+)?([[:space:]])/\\1$suite\\2\\3/" "$sources" >"$tmp/apt.list"
  fi
  # Bit-for-bit reproducible for the same package versions: mmdebstrap clamps times to this.
  epoch=$(git -C "$ROOT" log -1 --format=%ct -- hack/images/base 2>/dev/null || true)
  log "base $tag: mmdebstrap $suite + ${packages// /,}"
  # shellcheck disable=SC2016 # the hooks are expanded by mmdebstrap ($1: the root)
  SOURCE_DATE_EPOCH=${epoch:-0} mmdebstrap --variant=minbase \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include="${packages// /,}" \
    --dpkgopt="$HERE/base/dpkg.cfg" \
    --customize-hook='mkdir -p "$1/usr/share/cerebelum-base"' \
    --customize-hook='chroot "$1" dpkg-query -W -f "\${Package}\t\${Version}\n" >"$1/usr/share/cerebelum-base/packages.txt"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old "$1"/var/log/* "$1"/tmp/*' \
    "$suite" "$tmp/rootfs.tar" "$tmp"/apt.* >"$tmp/mmdebstrap.log" 2>&1 ||
    { tail -n 40 "$tmp/mmdebstrap.log" >&2; die "mmdebstrap failed for $name"; }
  tar -xOf "$tmp/rootfs.tar" ./usr/share/cerebelum-base/packages.txt >"$tmp/packages.txt"
  podman import --quiet \
    --change "CMD $cmd" \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" \
    --change "LABEL cerebelum.recipe=$hash" \
    --change "LABEL org.opencontainers.image.description=\"$description (packages: /usr/share/cerebelum-base/packages.txt)\"" \
    --change "LABEL cerebelum.base.suite=$suite" \
    --message "hack/images/build.sh: $name" \
    "$tmp/rootfs.tar" "$tag" >/dev/null
  mkdir -p "$CACHE/bases"
  cp "$tmp/packages.txt" "$CACHE/bases/$name-$hash.packages.txt"
  rm -rf "$tmp"
  log "base $tag: built in $((SECONDS - t))s, $(wc -l <"$CACHE/bases/$name-$hash.packages.txt") packages"
}

# ---- checks: each image as the charts run it --------------------------------------------------
RUN_RO=(podman run --rm --network none "${ULIMITS[@]}" --read-only --read-only-tmpfs=false --tmpfs /tmp)

check_operator() {
  local tag=$1 vol="cerebelum-images-check-$$" rc=0
  "${RUN_RO[@]}" --user 10001:10001 "$tag" --help >/dev/null
  # The engine itself, on SQLite in a volume at /data (a new volume takes the image's owner of
  # /data, 10001, as a PVC with fsGroup does): up, serving, then stopped.
  podman volume rm -f "$vol" >/dev/null 2>&1 || true
  # shellcheck disable=SC2016 # a script for the container's shell
  "${RUN_RO[@]}" --user 10001:10001 -v "$vol:/data" --entrypoint sh "$tag" -c '
    cerebelum dev --address 127.0.0.1:7450 >/tmp/dev.log 2>&1 & pid=$!
    for _ in $(seq 60); do
      if cerebelum get workflows --address 127.0.0.1:7450 >/dev/null 2>&1; then
        kill $pid; wait $pid || true; test -s /data/cerebelum.db; exit
      fi
      sleep 0.5
    done
    cat /tmp/dev.log >&2; exit 1' || rc=$?
  podman volume rm -f "$vol" >/dev/null 2>&1 || true
  return "$rc"
}
check_worker-python() {
  "${RUN_RO[@]}" --user 10001:10001 --workdir /app "$1" python -c "import cerebelum; print(cerebelum.Worker)" >/dev/null
}
check_worker-typescript() {
  "${RUN_RO[@]}" --user 10001:10001 --workdir /app "$1" node -e \
    "import('@cerebelum/worker').then((m) => { if (typeof m.Worker !== 'function') process.exit(1) })"
}
check_example-worker() {
  "${RUN_RO[@]}" --user 10001:10001 --workdir /app "$1" python -c \
    "import importlib.util as u; s = u.spec_from_file_location('w', '/app/worker.py'); m = u.module_from_spec(s); s.loader.exec_module(m); assert m.worker"
}
check_postgres() {
  local tag=$1 name="cerebelum-images-check-$$" ok=""
  podman rm -f "$name" >/dev/null 2>&1 || true
  podman volume rm -f "$name" >/dev/null 2>&1 || true
  podman run -d --name "$name" --network none "${ULIMITS[@]}" \
    --read-only --read-only-tmpfs=false --tmpfs /tmp --tmpfs /var/run/postgresql:rw,U \
    -v "$name:/var/lib/postgresql/data" \
    -e POSTGRES_PASSWORD=check-password -e POSTGRES_USER=cerebelum -e POSTGRES_DB=cerebelum \
    "$tag" >/dev/null
  for _ in $(seq 60); do
    if podman exec "$name" pg_isready -q -h 127.0.0.1 -p 5432 &&
      podman exec -e PGPASSWORD=check-password "$name" \
        psql -h 127.0.0.1 -U cerebelum -d cerebelum -tAc 'select current_user' 2>/dev/null | grep -qx cerebelum; then
      ok=1; break
    fi
    sleep 0.5
  done
  [[ -n $ok ]] || podman logs "$name" >&2 || true
  podman rm -f -t 10 "$name" >/dev/null 2>&1 || true
  podman volume rm -f "$name" >/dev/null 2>&1 || true
  [[ -n $ok ]]
}

# ---- what the results are keyed on ----------------------------------------------------------
# A base: its recipe, the dpkg settings and the code that makes it (build_base, sources_file).
# An image: its base's key, this script, its Dockerfile and the files of its build context.
base_hash() { { cat "$(base_conf "$1")" "$HERE/base/dpkg.cfg"; declare -f build_base sources_file; } | sha; }
SCRIPT_HASH=$(sha <"$HERE/build.sh")
declare -A IMAGE_HASH
for spec in "${IMAGES[@]}"; do
  IFS='|' read -r name dockerfile _ _ base _ inputs <<<"$spec"
  # shellcheck disable=SC2086 # inputs is a list of paths
  IMAGE_HASH[$name]=$({ base_hash "$base"; echo "$SCRIPT_HASH"; echo "$dockerfile"; files_hash "$dockerfile" $inputs; } | sha)
done
ALL_HASH=$(for spec in "${IMAGES[@]}"; do echo "${IMAGE_HASH[${spec%%|*}]}"; done | sha | cut -c1-16)
OUT="$CACHE/$ALL_HASH"

case "${1:-}" in
  --print-dir) echo "$OUT"; exit 0 ;;
  --env)
    printf 'export CONTAINERS_CONF=%q CONTAINERS_STORAGE_CONF=%q\n' "$CONTAINERS_CONF" "$CONTAINERS_STORAGE_CONF"
    exit 0 ;;
  "") ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1" ;;
esac

if [[ -f $OUT/images.txt ]]; then
  echo "$OUT"
  exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [[ -f $OUT/images.txt ]]; then echo "$OUT"; exit 0; fi
total_start=$SECONDS
rm -rf "$CACHE"/.base.* "$CACHE"/.out.*   # left by an interrupted run
ensure_tools
write_podman_conf

# ---- images ------------------------------------------------------------------------------------
for base in "${BASES[@]}"; do build_base "$base"; done

TMP=$(mktemp -d "$CACHE/.out.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
: >"$TMP/images.txt"
for spec in "${IMAGES[@]}"; do
  IFS='|' read -r name dockerfile context ignorefile base arg _ <<<"$spec"
  tag=$(image_tag "$name")
  archive="$PODMAN_DIR/archives/$name-${IMAGE_HASH[$name]}.tar"
  if [[ ! -s $archive ]]; then
    base_tag=$(base_field "$base" TAG)
    build=(podman build --network host --pull=never --layers "${ULIMITS[@]}"
      -f "$ROOT/$dockerfile" --build-arg "$arg=$base_tag"
      --label "org.opencontainers.image.base.name=$base_tag"
      --label "cerebelum.inputs=${IMAGE_HASH[$name]}" -t "$tag")
    [[ -n $ignorefile ]] && build+=(--ignorefile "$ROOT/$ignorefile")
    # RUN steps trust what the host trusts (a TLS-inspecting proxy's CA, where there is one): the
    # host's bundle is mounted over the base's during the build only, never copied into an image.
    [[ -s $HOST_CA_BUNDLE ]] && build+=(--volume "$HOST_CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
    t=$SECONDS
    log "$tag: podman build -f $dockerfile (base $base_tag)"
    mkdir -p "$CACHE/logs"
    if ! "${build[@]}" "$ROOT/$context" >"$CACHE/logs/$name.log" 2>&1; then
      tail -n 40 "$CACHE/logs/$name.log" >&2
      die "podman build of $name failed (log: $CACHE/logs/$name.log)"
    fi
    built=$((SECONDS - t))
    t=$SECONDS
    "check_$name" "$tag" || die "$tag built but does not run as the charts run it (check_$name)"
    checked=$((SECONDS - t))
    podman save --quiet --format docker-archive -o "$archive.tmp" "$tag"
    mv -f "$archive.tmp" "$archive"
    log "$tag: built in ${built}s, checked in ${checked}s, $(du -h "$archive" | cut -f1) archive"
  fi
  ln -f "$archive" "$TMP/$name.tar"
  echo "$tag $OUT/$name.tar" >>"$TMP/images.txt"
done

# The package lists of the bases, for the record.
for base in "${BASES[@]}"; do
  f="$CACHE/bases/$base-$(base_hash "$base").packages.txt"
  [[ -f $f ]] && cp "$f" "$TMP/base-$base.packages.txt"
done

chmod 0755 "$TMP"
rm -rf "$OUT"
mv "$TMP" "$OUT"
trap - EXIT
# Keep the three newest result directories and the archives they use.
find "$CACHE" -mindepth 1 -maxdepth 1 -type d -regex '.*/[0-9a-f]\{16\}' -printf '%T@ %p\n' |
  sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -rf
find "$PODMAN_DIR/archives" -name '*.tar' -links 1 -delete
log "images ready in $((SECONDS - total_start))s: $OUT"
echo "$OUT"
