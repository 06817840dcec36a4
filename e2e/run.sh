#!/usr/bin/env bash
# End-to-end test on a kind cluster: build the operator and example worker images, install both
# charts, run the provision example through its approval, restart the operator pod while
# executions are in a durable sleep, and check that they still succeed with no step run twice.
#
#   e2e/run.sh            create (or reuse) the cluster, run, delete the cluster
#   e2e/run.sh --keep     leave the cluster for a look (kind delete cluster --name cerebelum-e2e)
#
# Needs docker (a running engine), kind, helm and kubectl on PATH; HELM=/path/to/helm overrides
# helm (e.g. HELM=$(bash hack/control-plane/build-helm.sh | tail -1)/helm). See e2e/README.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER=cerebelum-e2e
SYSTEM_NS=cerebelum-system
NS=default
OPERATOR_IMAGE=cerebelum-operator:e2e
WORKER_IMAGE=cerebelum-example-worker:e2e
HELM="${HELM:-helm}"
KEEP=false

usage() { sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=true ;;
    -h | --help) usage; exit 0 ;;
    *) echo "e2e: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

log() { printf '\n== %s\n' "$*"; }
die() { printf 'e2e: FAIL: %s\n' "$*" >&2; exit 1; }

# ---- prerequisites, before anything is created ----
missing=()
for tool in docker kind "$HELM" kubectl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "e2e: missing on PATH: ${missing[*]}" >&2
  echo "e2e: needs docker (with a running engine), kind, helm and kubectl; see e2e/README.md" >&2
  exit 1
fi
docker info >/dev/null 2>&1 || {
  echo "e2e: docker is installed but its engine does not answer (docker info failed); start it" >&2
  exit 1
}

CONTEXT="kind-$CLUSTER"
k() { kubectl --context "$CONTEXT" "$@"; }
h() { "$HELM" --kube-context "$CONTEXT" "$@"; }

# The execution's phase ("" before the operator first writes its status).
phase() { k get -n "$NS" execution "$1" -o jsonpath='{.status.phase}' 2>/dev/null || true; }

# Wait until an Execution is Succeeded; fail at once when it ends otherwise.
wait_succeeded() {
  local name=$1 timeout=$2 deadline=$((SECONDS + $2)) p
  while ((SECONDS < deadline)); do
    p=$(phase "$name")
    case "$p" in
      Succeeded) echo "execution/$name Succeeded"; return 0 ;;
      Failed | Cancelled) die "execution/$name ended $p: $(k get -n "$NS" execution "$name" -o jsonpath='{.status.error}')" ;;
    esac
    sleep 1
  done
  die "execution/$name is still ${p:-without a phase} after ${timeout}s"
}

# The name of a ready operator pod other than $1 (the chart's label, not its Deployment's name).
ready_operator_pod() {
  k get pod -n "$SYSTEM_NS" -l app.kubernetes.io/name=cerebelum -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.metadata.deletionTimestamp}{"\t"}{range .status.conditions[?(@.type=="Ready")]}{.status}{end}{"\n"}{end}' |
    awk -F '\t' -v old="${1:-}" '$1 != old && $2 == "" && $3 == "True" { print $1; exit }'
}

wait_operator_ready() {
  local not=${1:-} deadline=$((SECONDS + 180)) pod=""
  while ((SECONDS < deadline)); do
    pod=$(ready_operator_pod "$not")
    [[ -n $pod ]] && { echo "$pod"; return 0; }
    sleep 2
  done
  die "no ready operator pod ${not:+other than $not }after 180s"
}

dump() {
  echo "---- executions"
  k get -n "$NS" executions,approvals,workflows -o wide || true
  k get -n "$NS" executions -o yaml || true
  echo "---- pods and events in $SYSTEM_NS"
  k get -n "$SYSTEM_NS" pods -o wide || true
  k get -n "$SYSTEM_NS" events --sort-by=.lastTimestamp || true
  echo "---- operator logs"
  k logs -n "$SYSTEM_NS" -l app.kubernetes.io/name=cerebelum --all-containers --tail=300 --prefix || true
  echo "---- operator logs, previous containers"
  k logs -n "$SYSTEM_NS" -l app.kubernetes.io/name=cerebelum --all-containers --tail=100 --prefix --previous || true
  echo "---- worker logs"
  k logs -n "$SYSTEM_NS" -l app.kubernetes.io/name=cerebelum-worker --all-containers --tail=100 --prefix || true
}

created_cluster=false
finish() {
  local rc=$?
  set +e
  if ((rc != 0)) && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "FAILED (exit $rc): state of the cluster"
    dump
  fi
  if $KEEP; then
    echo "e2e: cluster $CLUSTER kept (kubectl --context $CONTEXT ...; kind delete cluster --name $CLUSTER)"
  elif kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "deleting cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER"
  fi
  exit "$rc"
}
trap finish EXIT

# ---- cluster ----
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "reusing cluster $CLUSTER"
else
  log "creating cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --config "$ROOT/e2e/kind-config.yaml" --wait 120s
  created_cluster=true
fi

# ---- images ----
log "building $OPERATOR_IMAGE and $WORKER_IMAGE"
docker build -f "$ROOT/images/operator/Dockerfile" -t "$OPERATOR_IMAGE" "$ROOT"
docker build -f "$ROOT/examples/provision/Dockerfile" -t "$WORKER_IMAGE" "$ROOT"
kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$WORKER_IMAGE"

# ---- a reused cluster: drop the previous run's objects ----
if ! $created_cluster; then
  log "removing the previous run's Approvals and Executions"
  k delete -n "$NS" --ignore-not-found --timeout=60s \
    -f "$ROOT/examples/provision/approval.yaml" -f "$ROOT/examples/provision/execution.yaml" \
    -f "$ROOT/e2e/sleep-execution.yaml" 2>/dev/null || true
fi

# ---- charts ----
# `upgrade --install` is `install` on a new cluster and lets a kept cluster run again.
log "installing the operator (charts/cerebelum)"
# The workers run in $SYSTEM_NS and serve the executions of $NS: the access policy says so (by
# default a ServiceAccount takes only its own namespace's tasks).
h upgrade --install cerebelum "$ROOT/charts/cerebelum" -n "$SYSTEM_NS" --create-namespace \
  --set image.repository=cerebelum-operator --set image.tag=e2e --set image.pullPolicy=Never \
  --set-json "auth.accessPolicy={\"workers\":[{\"subjects\":[\"system:serviceaccount:$SYSTEM_NS:*\"],\"namespaces\":[\"$NS\"],\"queues\":[\"*\"]}]}" \
  --wait --timeout 5m
log "installing the workers (charts/cerebelum-worker)"
h upgrade --install provision-worker "$ROOT/charts/cerebelum-worker" -n "$SYSTEM_NS" \
  --set image.repository=cerebelum-example-worker --set image.tag=e2e --set image.pullPolicy=Never \
  --wait --timeout 3m
h upgrade --install sleep-worker "$ROOT/charts/cerebelum-worker" -n "$SYSTEM_NS" \
  -f "$ROOT/e2e/sleep-worker-values.yaml" \
  --set image.repository=cerebelum-example-worker --set image.tag=e2e --set image.pullPolicy=Never \
  --wait --timeout 3m
if ! $created_cluster; then
  # Same tags, new images: restart the pods so they run what was just built and loaded.
  k rollout restart -n "$SYSTEM_NS" deployment -l app.kubernetes.io/name=cerebelum
  k rollout restart -n "$SYSTEM_NS" deployment/provision-worker deployment/sleep-worker
  k rollout status -n "$SYSTEM_NS" deployment -l app.kubernetes.io/name=cerebelum --timeout=180s
  k rollout status -n "$SYSTEM_NS" deployment/provision-worker --timeout=120s
  k rollout status -n "$SYSTEM_NS" deployment/sleep-worker --timeout=120s
fi
k wait --for=condition=Established --timeout=60s \
  crd/workflows.cerebelum.io crd/executions.cerebelum.io crd/approvals.cerebelum.io

# ---- the provision example, up to its approval ----
log "provision example: Workflow and Execution"
k apply -n "$NS" -f "$ROOT/examples/provision/workflow.yaml" -f "$ROOT/e2e/sleep-workflow.yaml"
k create -n "$NS" -f "$ROOT/examples/provision/execution.yaml"
k wait -n "$NS" --for=jsonpath='{.status.phase}'=WaitingForApproval execution/provision-eu-1 --timeout=180s

# The example's durable sleep lasts 2 s: too short to restart the operator inside it reliably.
# e2e-sleep sleeps 120 s on its own worker, so the restart below always falls inside a sleep.
log "e2e-sleep: an Execution that sleeps 120 s"
k create -n "$NS" -f "$ROOT/e2e/sleep-execution.yaml"
k wait -n "$NS" --for=jsonpath='{.status.phase}'=Sleeping execution/e2e-sleep-1 --timeout=180s

log "approving provision-eu-1"
k create -n "$NS" -f "$ROOT/examples/provision/approval.yaml"
k wait -n "$NS" --for=jsonpath='{.status.phase}'=Applied approval/provision-eu-1-go-live --timeout=60s
if k wait -n "$NS" --for=jsonpath='{.status.phase}'=Sleeping execution/provision-eu-1 --timeout=30s; then
  echo "provision-eu-1 is in its 2 s sleep"
else
  echo "provision-eu-1 left its 2 s sleep unseen (phase now: $(phase provision-eu-1)); e2e-sleep-1 is the restart's witness"
fi

# ---- restart the operator during the sleep ----
[[ $(phase e2e-sleep-1) == Sleeping ]] || die "e2e-sleep-1 is $(phase e2e-sleep-1), not Sleeping, before the restart"
wake_at=$(k get -n "$NS" execution e2e-sleep-1 -o jsonpath='{.status.wakeAt}')
old_pod=$(wait_operator_ready)
log "deleting the operator pod $old_pod (e2e-sleep-1 Sleeping until $wake_at; provision-eu-1 $(phase provision-eu-1))"
k delete pod -n "$SYSTEM_NS" -l app.kubernetes.io/name=cerebelum --wait=true --timeout=120s
new_pod=$(wait_operator_ready "$old_pod")
echo "new operator pod $new_pod is ready (the Lease holder)"

# ---- both finish ----
log "waiting for the executions to succeed"
wait_succeeded provision-eu-1 300
wait_succeeded e2e-sleep-1 300

# No step of e2e-sleep-1 ran twice: the timer came back from the store, not from a rerun of nap.
attempts=$(k get -n "$NS" execution e2e-sleep-1 -o jsonpath='{range .status.steps[*]}{.name}={.attempts} {end}')
echo "e2e-sleep-1 step attempts: $attempts"
for entry in $attempts; do
  [[ ${entry#*=} == 1 ]] || die "e2e-sleep-1: step ${entry%=*} ran ${entry#*=} times"
done
[[ $attempts == *"nap=1"* && $attempts == *"wake=1"* ]] || die "e2e-sleep-1: unexpected steps: $attempts"

log "result"
k get -n "$NS" executions -o wide
for name in provision-eu-1 e2e-sleep-1; do
  echo "---- execution/$name"
  k get -n "$NS" execution "$name" -o yaml | sed -n '/^status:/,$p'
done
echo "---- approval/provision-eu-1-go-live: approver $(k get -n "$NS" approval provision-eu-1-go-live -o jsonpath='{.status.approver}')"
log "PASS: both executions succeeded across an operator restart"
