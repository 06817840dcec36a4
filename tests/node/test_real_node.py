"""The charts on a real node: helm install, real pods, and the failures users meet first.

One module-scoped installation serves the tests, in file order: the charts with their defaults
(only the images are local), the provision example through kubectl, the operator pod deleted in a
durable sleep, a worker pod deleted mid-step, workers scaled 1 -> 3 -> 1, a helm upgrade with
executions in flight, and last the operator moved to PostgreSQL running as a pod, with a standby
replica that takes the Lease when the leader's pod is deleted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.helm import helm_binary
from tests.support.node import NODE_NAME, NodeCluster

# Pods start in seconds, but a step waits out real sleeps and a Lease hand-over: minutes, not the default 120 s.
pytestmark = [pytest.mark.node, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_NS = "cerebelum-system"
NS = "team-a"
OPERATOR_IMAGE = ("localhost/cerebelum-operator", "dev")
WORKER_IMAGE = ("localhost/cerebelum-example-worker", "dev")
TS_WORKER_IMAGE = ("localhost/cerebelum-worker-typescript", "dev")
POSTGRES_IMAGE = "localhost/cerebelum-postgres:dev"
OPERATOR_LABEL = "app.kubernetes.io/name=cerebelum"
LEADER_LABEL = f"{OPERATOR_LABEL},cerebelum.io/role=leader"  # the pod the gRPC Service selects
TERMINAL = {"Succeeded", "Failed", "Cancelled"}


class Cluster:
    """kubectl and helm against the node, and waits that fail with the cluster's state."""

    def __init__(self, node: NodeCluster) -> None:
        self.node = node

    def k(self, *args: str, ns: str | None = NS, check: bool = True, input: str | None = None) -> str:
        argv = [*args, "-n", ns] if ns else list(args)
        return self.node.kubectl(*argv, check=check, input=input).stdout

    def json(self, *args: str, ns: str | None = NS) -> Any:
        return json.loads(self.k("get", *args, "-o", "json", ns=ns))

    def helm(self, *args: str) -> str:
        proc = subprocess.run(
            [str(helm_binary()), "--kubeconfig", str(self.node.kubeconfig), *args], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}\n{self.dump()}")
        return proc.stdout

    def wait(self, what: str, condition: Callable[[], bool], *, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:.0f}s\n{self.dump()}")
            time.sleep(0.5)

    def execution(self, name: str, *, ns: str = NS) -> dict[str, Any]:
        status: dict[str, Any] = self.json("execution", name, ns=ns).get("status") or {}
        return status

    def phase(self, name: str, *, ns: str = NS) -> str:
        return str(self.execution(name, ns=ns).get("phase") or "")

    def wait_phase(self, name: str, phase: str, *, ns: str = NS, timeout: float = 180) -> dict[str, Any]:
        def reached() -> bool:
            now = self.phase(name, ns=ns)
            if now in TERMINAL and now != phase:
                raise AssertionError(f"execution {name} ended {now}, not {phase}: {self.execution(name, ns=ns)}")
            return now == phase

        self.wait(f"execution {name} {phase}", reached, timeout=timeout)
        return self.execution(name, ns=ns)

    def sh(self, command: str) -> None:
        """Run a documented shell command as written, with this cluster's kubeconfig and helm."""
        env = {**self.node.env, "PATH": f"{helm_binary().parent}:{os.environ['PATH']}"}
        proc = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"{command!r} failed:\n{proc.stdout}{proc.stderr}\n{self.dump()}")

    def create_execution(self, name: str, workflow: str, input: dict[str, Any]) -> None:
        doc = {
            "apiVersion": "cerebelum.io/v1alpha1",
            "kind": "Execution",
            "metadata": {"name": name},
            "spec": {"workflow": workflow, "input": input},
        }
        self.k("create", "-f", "-", input=json.dumps(doc))

    def pods(self, selector: str, *, ns: str = NS) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.json("pods", "-l", selector, ns=ns)["items"]
        return items

    def ready_pods(self, selector: str, *, ns: str = NS) -> list[str]:
        return [
            p["metadata"]["name"]
            for p in self.pods(selector, ns=ns)
            if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        ]

    def lease_holder(self) -> str:
        leases = self.json("leases", ns=SYSTEM_NS)["items"]
        holders = [
            lease["spec"].get("holderIdentity") or "" for lease in leases if "cerebelum" in lease["metadata"]["name"]
        ]
        return holders[0] if holders else ""

    def dump(self) -> str:
        parts = []
        for args, ns in (
            (("get", "pods,deployments,pvc,executions", "-o", "wide"), NS),
            (("get", "pods,executions,approvals", "-o", "wide"), "default"),
            (("get", "pods,deployments,pvc,leases", "-o", "wide"), SYSTEM_NS),
            (("get", "events", "--sort-by=.lastTimestamp"), SYSTEM_NS),
            (("get", "events", "--sort-by=.lastTimestamp"), NS),
            (("logs", "-l", OPERATOR_LABEL, "--all-containers", "--tail=80", "--prefix"), SYSTEM_NS),
            (("logs", "-l", "app.kubernetes.io/name=cerebelum-worker", "--tail=30", "--prefix"), NS),
        ):
            proc = self.node.kubectl(*args, "-n", ns, check=False)
            parts.append(f"--- kubectl {' '.join(args)} -n {ns}\n{proc.stdout}{proc.stderr}")
        return "\n".join(parts)[-20000:]


def readme_kubernetes_block() -> str:
    """The README's "On Kubernetes" block, as written."""
    section = (ROOT / "README.md").read_text().split("## On Kubernetes", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README's 'On Kubernetes' section has no bash block"
    return match.group(1)


def readme_kubernetes_commands() -> list[str]:
    """The README's "On Kubernetes" commands; only the worker image is a placeholder."""
    # The chart's default worker image name, which the node has for the example worker's image.
    block = readme_kubernetes_block().replace("<your worker image>", "cerebelum/example-worker")
    return [line for line in block.splitlines() if line.strip()]


DOC_BLOCKS = [readme_kubernetes_block()]  # checked by tests/docs: this module runs them as written
README_COMMANDS = readme_kubernetes_commands()
WATCH = next(c for c in README_COMMANDS if " -w" in c)  # blocks until interrupted: not run
APPROVE = README_COMMANDS[-1]


def volume_gid(path: Path) -> int:
    return path.stat().st_gid


def _image_args(image: tuple[str, str]) -> list[str]:
    return ["--set", f"image.repository={image[0]}", "--set", f"image.tag={image[1]}"]


@pytest.fixture(scope="module")
def cluster(node: NodeCluster) -> Iterator[Cluster]:
    """Both charts installed as docs/install.md says, with the provision and e2e workers running."""
    c = Cluster(node)
    assert node.dir is not None
    # A pre-made local PersistentVolume for the operator's SQLite claim (there is no provisioner):
    # a root-owned directory, as a fresh disk is, so the pod can write only through the chart's
    # fsGroup, which the kubelet applies to local volumes as CSI drivers do to theirs.
    volume = node.dir / "volumes" / "operator-data"
    volume.mkdir(parents=True)
    volume.chmod(0o755)
    c.k(
        "apply",
        "-f",
        "-",
        ns=None,
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": "operator-data"},
                "spec": {
                    "capacity": {"storage": "5Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "local": {"path": str(volume)},
                    "nodeAffinity": {
                        "required": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}
                                    ]
                                }
                            ]
                        }
                    },
                },
            }
        ),
    )
    # The images under the names the charts use by default (`image.repository`, appVersion tag),
    # so the README's commands install them as written: nothing can be pulled here.
    chart_version = yaml.safe_load((ROOT / "charts" / "cerebelum" / "Chart.yaml").read_text())["appVersion"]
    node.tag_image(f"{OPERATOR_IMAGE[0]}:{OPERATOR_IMAGE[1]}", f"docker.io/cerebelum/operator:{chart_version}")
    node.tag_image(f"{WORKER_IMAGE[0]}:{WORKER_IMAGE[1]}", f"docker.io/cerebelum/example-worker:{chart_version}")
    for command in README_COMMANDS:
        if command not in (WATCH, APPROVE):  # the approval comes when the example waits for it
            c.sh(command)
    c.k("rollout", "status", "deployment/cerebelum", "--timeout=300s", ns=SYSTEM_NS)
    c.k("create", "namespace", NS, ns=None)
    for release, values, image in (
        ("sleep-worker", ["-f", str(ROOT / "e2e" / "sleep-worker-values.yaml")], WORKER_IMAGE),
        ("work-worker", ["-f", str(ROOT / "e2e" / "work-worker-values.yaml")], WORKER_IMAGE),
        ("ts-worker", ["-f", str(ROOT / "e2e" / "ts-worker-values.yaml")], TS_WORKER_IMAGE),
    ):
        c.helm(
            "install", release, str(ROOT / "charts" / "cerebelum-worker"), "-n", NS, *values,
            *_image_args(image), "--wait", "--timeout", "3m",
        )  # fmt: skip
    c.k(
        "apply",
        "-f", str(ROOT / "e2e" / "sleep-workflow.yaml"),
        "-f", str(ROOT / "e2e" / "work-workflow.yaml"),
        "-f", str(ROOT / "e2e" / "ts-workflow.yaml"),
    )  # fmt: skip
    yield c
    print(c.dump())  # shown when a test of the module failed


def test_the_charts_install_with_their_defaults_and_the_operator_writes_its_store_as_a_non_root_user(
    cluster: Cluster,
) -> None:
    pods = cluster.pods(OPERATOR_LABEL, ns=SYSTEM_NS)
    assert len(pods) == 1
    container = pods[0]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    statuses = pods[0]["status"]["containerStatuses"]
    assert statuses[0]["ready"] is True and statuses[0]["restartCount"] == 0
    # The claim is bound to the volume and the store lives there, owned by the pod's user.
    assert cluster.json("pvc", ns=SYSTEM_NS)["items"][0]["status"]["phase"] == "Bound"
    assert cluster.node.dir is not None
    store = cluster.node.dir / "volumes" / "operator-data" / "cerebelum.db"
    cluster.wait("the operator's SQLite store on the volume", store.exists, timeout=60)
    assert store.stat().st_uid == 10001
    assert store.stat().st_gid == 10001 and volume_gid(store.parent) == 10001  # fsGroup at work
    for release in ("sleep-worker", "work-worker", "ts-worker"):
        assert cluster.ready_pods(f"app.kubernetes.io/instance={release}"), release
    cluster.wait(
        "the README's worker is Ready",
        lambda: bool(cluster.ready_pods("app.kubernetes.io/instance=provision-worker", ns="default")),
    )


def test_the_readme_kubernetes_tour_runs_as_written_with_the_worker_reaching_the_operator_by_its_service(
    cluster: Cluster,
) -> None:
    # The fixture ran the README's commands up to the approval; the example now waits for it.
    cluster.wait_phase("provision-eu-1", "WaitingForApproval", ns="default")
    cluster.sh(APPROVE)
    status = cluster.wait_phase("provision-eu-1", "Succeeded", ns="default")
    assert status["output"]["server"] and status["output"]["ip"]
    # The approver is who created the Approval (the chart's admission policy stamps it), not a claim.
    assert status["output"]["approvedBy"] == "cerebelum-admin"
    attempts = {s["name"]: s["attempts"] for s in status["steps"]}
    # create_server fails its first attempt on purpose (examples/provision/worker.py); nothing else repeats.
    assert attempts.pop("create_server") == 2
    assert set(attempts.values()) == {1}, attempts


def test_a_typescript_worker_pod_on_the_sdk_base_image_serves_its_steps(cluster: Cluster) -> None:
    (pod,) = cluster.ready_pods("app.kubernetes.io/instance=ts-worker")
    cluster.create_execution("ts-hello", "e2e-ts", {"name": "node"})
    status = cluster.wait_phase("ts-hello", "Succeeded")
    assert status["output"] == {"greeting": "hello node", "pod": pod}


def test_an_execution_sleeping_when_the_operator_pod_is_deleted_finishes_under_the_replacement_pod(
    cluster: Cluster,
) -> None:
    cluster.create_execution("nap-across-restart", "e2e-sleep", {"seconds": 40})
    cluster.wait_phase("nap-across-restart", "Sleeping")
    (old_pod,) = cluster.ready_pods(LEADER_LABEL, ns=SYSTEM_NS)
    cluster.k("delete", "pod", old_pod, "--wait=true", "--timeout=120s", ns=SYSTEM_NS)
    cluster.wait(
        "a replacement operator pod leads",
        lambda: [p for p in cluster.ready_pods(LEADER_LABEL, ns=SYSTEM_NS) if p != old_pod] != [],
    )
    (new_pod,) = cluster.ready_pods(LEADER_LABEL, ns=SYSTEM_NS)
    assert cluster.phase("nap-across-restart") == "Sleeping"  # the timer came back from the store
    status = cluster.wait_phase("nap-across-restart", "Succeeded", timeout=240)
    assert cluster.lease_holder().startswith(new_pod)
    assert {s["name"]: s["attempts"] for s in status["steps"]} == {"nap": 1, "wake": 1}


def test_a_worker_pod_deleted_mid_step_finishes_its_step_before_it_goes(cluster: Cluster) -> None:
    (pod,) = cluster.ready_pods("app.kubernetes.io/instance=work-worker")
    cluster.create_execution("work-through-delete", "e2e-work", {"seconds": 8})
    cluster.wait(
        "the step runs",
        lambda: any(s["phase"] == "Running" for s in cluster.execution("work-through-delete").get("steps") or []),
    )
    cluster.k("delete", "pod", pod, "--wait=false")
    status = cluster.wait_phase("work-through-delete", "Succeeded", timeout=240)
    # The SDK drained on SIGTERM: the deleted pod finished the step, which ran once.
    assert status["output"]["pod"] == pod
    assert [s["attempts"] for s in status["steps"]] == [1]
    cluster.wait("a replacement worker pod", lambda: bool(cluster.ready_pods("app.kubernetes.io/instance=work-worker")))


def test_scaling_the_worker_deployment_from_one_to_three_and_back_loses_no_step(cluster: Cluster) -> None:
    workers = "app.kubernetes.io/instance=work-worker"
    cluster.k("scale", "deployment/work-worker", "--replicas=3")
    cluster.wait("three worker pods", lambda: len(cluster.ready_pods(workers)) == 3)
    three = set(cluster.ready_pods(workers))
    names = [f"scale-{i}" for i in range(12)]
    for name in names:
        cluster.create_execution(name, "e2e-work", {"seconds": 8})
    cluster.wait(
        "every step runs",
        lambda: all(any(s["phase"] == "Running" for s in cluster.execution(n).get("steps") or []) for n in names),
    )
    cluster.k("scale", "deployment/work-worker", "--replicas=1")  # two pods go while their steps run
    ran_on = {}
    for name in names:
        status = cluster.wait_phase(name, "Succeeded", timeout=300)
        assert [s["attempts"] for s in status["steps"]] == [1], name
        ran_on[name] = status["output"]["pod"]
    cluster.wait("one worker pod again", lambda: len(cluster.pods(workers)) == 1)
    (kept,) = cluster.ready_pods(workers)
    removed = three - {kept}
    # The pods removed by the scale-down finished the steps they had, each exactly once.
    assert set(ran_on.values()) & removed, ran_on


def test_a_helm_upgrade_with_executions_in_flight_finishes_them_all(cluster: Cluster) -> None:
    cluster.create_execution("nap-across-upgrade", "e2e-sleep", {"seconds": 30})
    cluster.create_execution("work-across-upgrade", "e2e-work", {"seconds": 20})
    cluster.wait_phase("nap-across-upgrade", "Sleeping")
    (old_pod,) = cluster.ready_pods(LEADER_LABEL, ns=SYSTEM_NS)
    cluster.helm(
        "upgrade", "cerebelum", str(ROOT / "charts" / "cerebelum"), "-n", SYSTEM_NS, "--reuse-values",
        "--set", "operator.logLevel=debug", "--wait", "--timeout", "5m",
    )  # fmt: skip
    assert old_pod not in cluster.ready_pods(OPERATOR_LABEL, ns=SYSTEM_NS)
    for name in ("nap-across-upgrade", "work-across-upgrade"):
        status = cluster.wait_phase(name, "Succeeded", timeout=240)
        assert all(s["attempts"] == 1 for s in status["steps"]), status["steps"]


def test_the_operator_on_postgresql_in_a_pod_hands_over_to_its_standby_when_the_leader_pod_goes(
    cluster: Cluster,
) -> None:
    manifest = (ROOT / "e2e" / "postgres.yaml").read_text().replace("image: postgres:15", f"image: {POSTGRES_IMAGE}")
    cluster.k("apply", "-f", "-", ns=SYSTEM_NS, input=manifest)
    cluster.k("rollout", "status", "deployment/postgres", "--timeout=180s", ns=SYSTEM_NS)
    cluster.helm(
        "upgrade", "cerebelum", str(ROOT / "charts" / "cerebelum"), "-n", SYSTEM_NS, "--reuse-values",
        "--set", "storage.type=postgresql", "--set", "storage.postgresql.existingSecret=cerebelum-db",
        "--set", "replicas=2", "--wait", "--timeout", "5m",
    )  # fmt: skip
    # Both replicas are Ready (the standby too: a rollout, `helm --wait` and a drain need that);
    # one of them leads, and the Service sends workers there.
    assert len(cluster.ready_pods(OPERATOR_LABEL, ns=SYSTEM_NS)) == 2
    cluster.wait("one operator pod leads", lambda: len(cluster.ready_pods(LEADER_LABEL, ns=SYSTEM_NS)) == 1)
    (leader,) = cluster.ready_pods(LEADER_LABEL, ns=SYSTEM_NS)
    cluster.create_execution("nap-on-postgres", "e2e-sleep", {"seconds": 20})
    cluster.wait_phase("nap-on-postgres", "Sleeping")
    cluster.k("delete", "pod", leader, "--wait=false", ns=SYSTEM_NS)
    cluster.wait(
        "the standby takes the Lease",
        lambda: bool(cluster.lease_holder()) and not cluster.lease_holder().startswith(leader),
        timeout=120,
    )
    cluster.wait(
        "the standby's pod leads",
        lambda: [p for p in cluster.ready_pods(LEADER_LABEL, ns=SYSTEM_NS) if p != leader] != [],
    )
    status = cluster.wait_phase("nap-on-postgres", "Succeeded", timeout=240)
    assert {s["name"]: s["attempts"] for s in status["steps"]} == {"nap": 1, "wake": 1}
